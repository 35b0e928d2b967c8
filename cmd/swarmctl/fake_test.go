package main

import (
	"bytes"
	"context"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/client"
)

// fakeAPI records calls and answers from canned values.
type fakeAPI struct {
	created   *minkepb.ServiceSpec
	services  []*minkepb.Service
	counts    map[string]*minkepb.ReplicaCounts
	tasks     []*minkepb.Task
	nodes     []*minkepb.Node
	cluster   *minkepb.Cluster
	logs      []*minkepb.LogMessage
	logsReq   *minkepb.ServiceLogsRequest
	scaled    map[string]uint64
	removed   []string
	waitErr   error
	err       error // returned by every call when set
	waitCalls int
}

var _ controlAPI = (*fakeAPI)(nil)

func (f *fakeAPI) CreateService(_ context.Context, spec *minkepb.ServiceSpec, _ ...client.CreateOption) (*minkepb.Service, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.created = spec
	return &minkepb.Service{Meta: &minkepb.Meta{Id: "svc0123456789abcdef"}, Spec: spec}, nil
}

func (f *fakeAPI) ResolveService(_ context.Context, ref string) (*minkepb.Service, error) {
	if f.err != nil {
		return nil, f.err
	}
	for _, s := range f.services {
		if s.GetSpec().GetName() == ref || s.GetMeta().GetId() == ref {
			return s, nil
		}
	}
	return &minkepb.Service{Meta: &minkepb.Meta{Id: "id-" + ref}, Spec: &minkepb.ServiceSpec{Name: ref}}, nil
}

func (f *fakeAPI) ListServices(context.Context) ([]*minkepb.Service, map[string]*minkepb.ReplicaCounts, error) {
	return f.services, f.counts, f.err
}

func (f *fakeAPI) ScaleService(_ context.Context, ref string, n uint64) (*minkepb.Service, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.scaled == nil {
		f.scaled = make(map[string]uint64)
	}
	f.scaled[ref] = n
	return &minkepb.Service{Meta: &minkepb.Meta{Id: "id-" + ref}, Spec: &minkepb.ServiceSpec{Name: ref}}, nil
}

func (f *fakeAPI) RemoveService(_ context.Context, ref string) error {
	if f.err != nil {
		return f.err
	}
	f.removed = append(f.removed, ref)
	return nil
}

func (f *fakeAPI) ListTasks(context.Context, string) ([]*minkepb.Task, error) { return f.tasks, f.err }
func (f *fakeAPI) ListNodes(context.Context) ([]*minkepb.Node, error)         { return f.nodes, f.err }

func (f *fakeAPI) GetCluster(context.Context) (*minkepb.Cluster, string, error) {
	return f.cluster, "127.0.0.1:4245", f.err
}

func (f *fakeAPI) ServiceLogs(_ context.Context, _ string, _ bool, fn func(*minkepb.LogMessage) error) error {
	for _, m := range f.logs {
		if err := fn(m); err != nil {
			return err
		}
	}
	return f.err
}

func (f *fakeAPI) ServiceLogsWith(ctx context.Context, req *minkepb.ServiceLogsRequest, fn func(*minkepb.LogMessage) error) error {
	f.logsReq = req
	return f.ServiceLogs(ctx, req.GetService(), req.GetFollow(), fn)
}

func (f *fakeAPI) WaitForService(_ context.Context, _ string, progress func(running, desired uint64, tasks []*minkepb.Task)) error {
	f.waitCalls++
	progress(0, 2, nil)
	progress(0, 2, nil) // unchanged: must not print twice
	progress(2, 2, f.tasks)
	return f.waitErr
}

func (f *fakeAPI) PushImage(_ context.Context, file, nameTag string) (string, string, error) {
	return nameTag, "sha256:abc", f.err
}

func (f *fakeAPI) UpdateNodeRole(_ context.Context, ref string, role minkepb.NodeRole) (*minkepb.Node, error) {
	for _, n := range f.nodes {
		if n.GetMeta().GetId() == ref || n.GetDescription().GetHostname() == ref {
			n.Role = role
			return n, f.err
		}
	}
	return nil, status.Errorf(codes.NotFound, "node %q not found", ref)
}

func (f *fakeAPI) RemoveNode(_ context.Context, ref string, _ bool) error {
	for i, n := range f.nodes {
		if n.GetMeta().GetId() == ref || n.GetDescription().GetHostname() == ref {
			f.nodes = append(f.nodes[:i], f.nodes[i+1:]...)
			return f.err
		}
	}
	return status.Errorf(codes.NotFound, "node %q not found", ref)
}

func (f *fakeAPI) UpdateNode(_ context.Context, ref string, av *minkepb.NodeSpec_Availability, add map[string]string, rm []string) (*minkepb.Node, error) {
	for _, n := range f.nodes {
		if n.GetMeta().GetId() == ref || n.GetDescription().GetHostname() == ref {
			if n.Spec == nil {
				n.Spec = &minkepb.NodeSpec{}
			}
			if av != nil {
				n.Spec.Availability = *av
			}
			if n.Spec.Labels == nil {
				n.Spec.Labels = map[string]string{}
			}
			for k, v := range add {
				n.Spec.Labels[k] = v
			}
			for _, k := range rm {
				delete(n.Spec.Labels, k)
			}
			return n, f.err
		}
	}
	return nil, status.Errorf(codes.NotFound, "node %q not found", ref)
}

func (f *fakeAPI) Backup(context.Context) ([]byte, uint64, error) { return []byte("snap"), 7, f.err }

func (f *fakeAPI) RotateJoinToken(_ context.Context, role minkepb.NodeRole) (*minkepb.JoinTokens, error) {
	if role == minkepb.NodeRole_WORKER {
		return &minkepb.JoinTokens{Worker: "MKTKN-2-worker-rotated"}, f.err
	}
	return &minkepb.JoinTokens{Manager: "MKTKN-2-manager-rotated"}, f.err
}

func (f *fakeAPI) Close() error { return nil }

// runFake runs swarmctl against f and returns exit code, stdout, stderr and
// whether the command connected at all.
func runFake(t *testing.T, f *fakeAPI, args ...string) (code int, stdout, stderr string, connected bool) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut, connect: func(context.Context, string) (controlAPI, error) {
		connected = true
		return f, nil
	}}
	code = execute(context.Background(), a, args, func(string) string { return "" })
	return code, out.String(), errOut.String(), connected
}
