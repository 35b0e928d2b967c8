package controlapi

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

func spec(name, image string, replicas uint64) *minkepb.ServiceSpec {
	return &minkepb.ServiceSpec{
		Name: name,
		Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: image}},
		Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: replicas}},
	}
}

func newServer(t *testing.T) (*Server, *raftstore.Node) {
	n := storetest.New(t)
	return New(Config{Store: n, RegistryAddr: "127.0.0.1:4245", Logger: slog.New(slog.DiscardHandler)}), n
}

func snapshot(t *testing.T, n *raftstore.Node) []*minkepb.Service {
	var out []*minkepb.Service
	_ = n.View(func(tx raftstore.ReadTx) error { out = tx.Services(); return nil })
	return out
}

func TestCreateServiceRefusesBadInput(t *testing.T) {
	s, n := newServer(t)
	ctx := context.Background()
	if _, err := s.CreateService(ctx, &minkepb.CreateServiceRequest{Spec: spec("web", "hello:latest", 3)}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, n)
	mem := func(b int64) *minkepb.ServiceSpec {
		sp := spec("m", "hello", 1)
		sp.Task.Resources = &minkepb.ResourceRequirements{Limits: &minkepb.Resources{MemoryBytes: b}}
		return sp
	}
	cases := []struct {
		name string
		spec *minkepb.ServiceSpec
		code codes.Code
		want string
	}{
		{"no spec", nil, codes.InvalidArgument, "spec is required"},
		{"empty image", spec("a", "", 1), codes.InvalidArgument, "image is required"},
		{"malformed image", spec("a", "UPPER:bad tag", 1), codes.InvalidArgument, `invalid image "UPPER:bad tag"`},
		{"bad name", spec("-x", "hello", 1), codes.InvalidArgument, `invalid name "-x"`},
		{"too many replicas", spec("a", "hello", MaxReplicas+1), codes.InvalidArgument, "invalid replicas"},
		{"no mode", &minkepb.ServiceSpec{Name: "a", Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "x"}}}, codes.InvalidArgument, "mode is required"},
		{"memory below floor", mem(1024), codes.InvalidArgument, "at least 6MiB"},
		{"negative memory", mem(-1), codes.InvalidArgument, "invalid limits memory -1"},
		{"bad env", func() *minkepb.ServiceSpec { s := spec("a", "x", 1); s.Task.Container.Env = []string{"=v"}; return s }(), codes.InvalidArgument, `invalid env "=v"`},
		{"negative delay", func() *minkepb.ServiceSpec {
			s := spec("a", "x", 1)
			s.Task.Restart = &minkepb.RestartPolicy{Delay: durationpb.New(-1)}
			return s
		}(), codes.InvalidArgument, "invalid restart delay"},
		{"bad constraint", func() *minkepb.ServiceSpec {
			s := spec("a", "x", 1)
			s.Task.Placement = &minkepb.Placement{Constraints: []string{"node.labels.zone=a"}}
			return s
		}(), codes.InvalidArgument, `placement.constraints: invalid constraint "node.labels.zone=a"`},
		{"bad preference", func() *minkepb.ServiceSpec {
			s := spec("a", "x", 1)
			s.Task.Placement = &minkepb.Placement{Preferences: []string{"pack=node.labels.zone"}}
			return s
		}(), codes.InvalidArgument, "placement.preferences"},
		{"bad capability", func() *minkepb.ServiceSpec {
			s := spec("a", "x", 1)
			s.Task.Container.CapAdd = []string{"FLY"}
			return s
		}(), codes.InvalidArgument, `invalid capabilities: CapAdd entry "FLY" is not a capability`},
		{"cap-add ALL", func() *minkepb.ServiceSpec {
			s := spec("a", "x", 1)
			s.Task.Container.CapAdd = []string{"ALL"}
			return s
		}(), codes.InvalidArgument, "adding every capability is not supported"},
		{"duplicate name", spec("WEB", "hello", 1), codes.AlreadyExists, `a service named "WEB" already exists`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.CreateService(ctx, &minkepb.CreateServiceRequest{Spec: c.spec})
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.want) {
				t.Fatalf("got %v, want %v containing %q", err, c.code, c.want)
			}
		})
	}
	if after := snapshot(t, n); len(after) != len(before) || !proto.Equal(after[0], before[0]) {
		t.Fatal("refused requests changed the store")
	}
}

func TestUpdateAndRemove(t *testing.T) {
	s, n := newServer(t)
	ctx := context.Background()
	created, err := s.CreateService(ctx, &minkepb.CreateServiceRequest{Spec: spec("", "registry.example/team/hello:1", 1)})
	if err != nil {
		t.Fatal(err)
	}
	svc := created.GetService()
	if !strings.HasPrefix(svc.GetSpec().GetName(), "hello-") {
		t.Errorf("default name %q", svc.GetSpec().GetName())
	}
	_, err = s.UpdateService(ctx, &minkepb.UpdateServiceRequest{ServiceId: svc.GetMeta().GetId(),
		ServiceVersion: svc.GetMeta().GetVersion() - 1, Spec: spec("", "x", 2)})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("stale version: %v", err)
	}
	up, err := s.UpdateService(ctx, &minkepb.UpdateServiceRequest{ServiceId: svc.GetSpec().GetName(),
		ServiceVersion: svc.GetMeta().GetVersion(), Spec: spec("", "x", 2)})
	if err != nil || up.GetService().GetSpec().GetReplicated().GetReplicas() != 2 || up.GetService().GetSpec().GetName() != svc.GetSpec().GetName() {
		t.Fatalf("update: %v %v", up, err)
	}
	if _, err := s.RemoveService(ctx, &minkepb.RemoveServiceRequest{Service: "nosuch"}); status.Code(err) != codes.NotFound {
		t.Fatalf("remove unknown: %v", err)
	}
	if _, err := s.GetService(ctx, &minkepb.GetServiceRequest{Service: "nosuch"}); status.Code(err) != codes.NotFound ||
		!strings.Contains(status.Convert(err).Message(), `service "nosuch"`) {
		t.Fatalf("get unknown: %v", err)
	}
	if _, err := s.RemoveService(ctx, &minkepb.RemoveServiceRequest{Service: svc.GetMeta().GetId()[:8]}); err != nil {
		t.Fatal(err)
	}
	if len(snapshot(t, n)) != 0 {
		t.Fatal("service not removed")
	}
}

func TestUpdateNode(t *testing.T) {
	s, n := newServer(t)
	ctx := context.Background()
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Node{Meta: &minkepb.Meta{Id: "n1"}, Description: &minkepb.NodeDescription{Hostname: "w1"},
			SecretHash: []byte("secret")})
	})
	resp, err := s.UpdateNode(ctx, &minkepb.UpdateNodeRequest{Node: "w1", SetAvailability: true,
		Availability: minkepb.NodeSpec_DRAIN, LabelAdd: map[string]string{"zone": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetNode().GetSpec().GetAvailability() != minkepb.NodeSpec_DRAIN || resp.GetNode().GetSpec().GetLabels()["zone"] != "a" ||
		resp.GetNode().GetSecretHash() != nil {
		t.Fatalf("node = %v", resp.GetNode())
	}
	cases := []struct {
		name string
		req  *minkepb.UpdateNodeRequest
		code codes.Code
		want string
	}{
		{"unknown node", &minkepb.UpdateNodeRequest{Node: "nope"}, codes.NotFound, `node "nope" not found`},
		{"missing label", &minkepb.UpdateNodeRequest{Node: "w1", LabelRm: []string{"rack"}}, codes.InvalidArgument, `invalid --label-rm "rack"`},
		{"empty key", &minkepb.UpdateNodeRequest{Node: "w1", LabelAdd: map[string]string{"": "x"}}, codes.InvalidArgument, "label key is empty"},
		{"bad availability", &minkepb.UpdateNodeRequest{Node: "w1", SetAvailability: true, Availability: 9}, codes.InvalidArgument, "invalid availability 9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.UpdateNode(ctx, c.req)
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.want) {
				t.Fatalf("got %v, want %v %q", err, c.code, c.want)
			}
		})
	}
	_ = n.View(func(tx raftstore.ReadTx) error {
		if got := tx.Node("n1").GetSpec().GetLabels(); len(got) != 1 || got["zone"] != "a" {
			t.Errorf("refused updates changed labels: %v", got)
		}
		return nil
	})
}

func TestRotateJoinToken(t *testing.T) {
	s, n := newServer(t)
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Cluster{Meta: &minkepb.Meta{Id: "c"}, JoinTokens: &minkepb.JoinTokens{Worker: "w0", Manager: "m0"}})
	})
	resp, err := s.RotateJoinToken(context.Background(), &minkepb.RotateJoinTokenRequest{Role: minkepb.NodeRole_WORKER})
	if err != nil {
		t.Fatal(err)
	}
	if w := resp.GetJoinTokens().GetWorker(); w == "w0" || !strings.HasPrefix(w, "MKTKN-2-worker-") || resp.GetJoinTokens().GetManager() != "m0" {
		t.Fatalf("tokens = %v", resp.GetJoinTokens())
	}
	if _, err := s.RotateJoinToken(context.Background(), &minkepb.RotateJoinTokenRequest{Role: 7}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad role: %v", err)
	}
}

// TestListServicesCounts: the counts ListServices takes from the store's
// task counts (replicated services) or the tasks (global ones) are those
// of the tasks, as they change.
func TestListServicesCounts(t *testing.T) {
	s, n := newServer(t)
	ctx := context.Background()
	global := spec("g", "hello", 0)
	global.Mode = &minkepb.ServiceSpec_Global{Global: &minkepb.GlobalService{}}
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		for _, svc := range []*minkepb.Service{{Meta: &minkepb.Meta{Id: "r"}, Spec: spec("r", "hello", 4)},
			{Meta: &minkepb.Meta{Id: "g"}, Spec: global}} {
			if err := tx.Create(svc); err != nil {
				return err
			}
		}
		for i, st := range []minkepb.TaskState{minkepb.TaskState_PENDING, minkepb.TaskState_ASSIGNED, minkepb.TaskState_RUNNING,
			minkepb.TaskState_RUNNING, minkepb.TaskState_FAILED} {
			for _, svc := range []string{"r", "g"} {
				if err := tx.Create(&minkepb.Task{Meta: &minkepb.Meta{Id: fmt.Sprintf("%s%d", svc, i)}, ServiceId: svc,
					NodeId: fmt.Sprint("n", i), DesiredState: minkepb.TaskState_RUNNING, Status: &minkepb.TaskStatus{State: st}}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	check := func(what string, id string, running, assigned, desired uint64) {
		t.Helper()
		resp, err := s.ListServices(ctx, &minkepb.ListServicesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		c := resp.GetCounts()[id]
		if c.GetRunning() != running || c.GetAssigned() != assigned || c.GetDesired() != desired {
			t.Fatalf("%s: service %s counts %v, want running %d assigned %d desired %d", what, id, c, running, assigned, desired)
		}
	}
	check("created", "r", 2, 3, 4)
	check("created", "g", 2, 3, 4) // nodes n0-n3 hold wanted tasks
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		for _, id := range []string{"r2", "g2"} {
			task := proto.Clone(tx.Task(id)).(*minkepb.Task)
			task.DesiredState = minkepb.TaskState_SHUTDOWN
			if err := tx.Update(task); err != nil {
				return err
			}
		}
		return tx.Delete(tx.Task("r3"))
	})
	check("after a shutdown and a removal", "r", 0, 1, 4)
	check("after a shutdown", "g", 1, 2, 3)
}
