package dispatcher

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

func TestJoinRefusesOverlappingContainerSubnets(t *testing.T) {
	f := newFixture(t)
	join := func(subnet, nodeID, secret string) (*minkepb.JoinResponse, error) {
		return f.client.Join(withToken(workerToken), &minkepb.JoinRequest{NodeId: nodeID, NodeSecret: secret, Addr: "127.0.0.2",
			Description: &minkepb.NodeDescription{Hostname: "w", ContainerSubnet: subnet}})
	}
	first, err := join("172.29.2.0/24", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		subnet string
		code   codes.Code
		inMsg  string
	}{
		{"172.29.2.0/24", codes.AlreadyExists, "overlaps 172.29.2.0/24"},
		{"172.29.0.0/16", codes.AlreadyExists, "overlaps"},
		{"172.29.2.0/33", codes.InvalidArgument, "CIDR"},
		{"172.29.2.5/24", codes.InvalidArgument, "CIDR"},
		{"172.29.3.0/24", codes.OK, ""},
	} {
		t.Run(tc.subnet, func(t *testing.T) {
			_, err := join(tc.subnet, "", "")
			if status.Code(err) != tc.code || (err != nil && !strings.Contains(err.Error(), tc.inMsg)) {
				t.Fatalf("join with %s: %v; want %v containing %q", tc.subnet, err, tc.code, tc.inMsg)
			}
		})
	}
	// The node itself may rejoin with its own subnet.
	if _, err := join("172.29.2.0/24", first.GetNodeId(), first.GetNodeSecret()); err != nil {
		t.Fatalf("rejoin with its own subnet: %v", err)
	}
	var n int
	_ = f.store.View(func(tx raftstore.ReadTx) error { n = len(tx.Nodes()); return nil })
	if n != 2 {
		t.Fatalf("%d nodes stored, want 2 (refused joins store nothing)", n)
	}
}

func TestNetworkStateBackendsAndRoutes(t *testing.T) {
	f := newFixture(t)
	node := func(id, addr, subnet string, st minkepb.NodeStatus_State) *minkepb.Node {
		return &minkepb.Node{Meta: &minkepb.Meta{Id: id}, Status: &minkepb.NodeStatus{State: st, Addr: addr},
			Description: &minkepb.NodeDescription{ContainerSubnet: subnet}}
	}
	task := func(id, nodeID string, state, desired minkepb.TaskState, health minkepb.HealthState, addr string) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceId: "s", NodeId: nodeID, DesiredState: desired,
			Status: &minkepb.TaskStatus{State: state, Container: &minkepb.ContainerStatus{Health: health, Address: addr}}}
	}
	const run, shut = minkepb.TaskState_RUNNING, minkepb.TaskState_SHUTDOWN
	updateStore(t, f, func(tx *raftstore.WriteTx) error {
		for _, n := range []*minkepb.Node{
			node("n1", "10.0.0.1", "172.29.1.0/24", minkepb.NodeStatus_READY),
			node("n2", "10.0.0.2", "172.29.2.0/24", minkepb.NodeStatus_READY),
			node("n3", "10.0.0.3", "172.29.3.0/24", minkepb.NodeStatus_DOWN),
		} {
			if err := tx.Create(n); err != nil {
				return err
			}
		}
		svc := &minkepb.Service{Meta: &minkepb.Meta{Id: "s"}, Spec: &minkepb.ServiceSpec{Name: "web"},
			Endpoint: &minkepb.Endpoint{VirtualIp: "172.30.0.1", Ports: []*minkepb.PortConfig{{PublishedPort: 8080, TargetPort: 80}}}}
		if err := tx.Create(svc); err != nil {
			return err
		}
		// A service none of whose tasks runs has a record without backends.
		idle := &minkepb.Service{Meta: &minkepb.Meta{Id: "t"}, Spec: &minkepb.ServiceSpec{Name: "idle"}, Endpoint: &minkepb.Endpoint{VirtualIp: "172.30.0.2"}}
		if err := tx.Create(idle); err != nil {
			return err
		}
		starting := task("idle1", "n1", minkepb.TaskState_STARTING, run, minkepb.HealthState_NO_HEALTHCHECK, "172.29.1.9/24")
		starting.ServiceId = "t"
		if err := tx.Create(starting); err != nil {
			return err
		}
		for _, tk := range []*minkepb.Task{
			task("ok1", "n1", run, run, minkepb.HealthState_NO_HEALTHCHECK, "172.29.1.2/24"),
			task("ok2", "n2", run, run, minkepb.HealthState_HEALTHY, "172.29.2.2/24"),
			task("sick", "n2", run, run, minkepb.HealthState_UNHEALTHY, "172.29.2.3/24"),
			task("warming", "n2", run, run, minkepb.HealthState_HEALTH_STARTING, "172.29.2.4/24"),
			task("stopping", "n2", run, shut, minkepb.HealthState_NO_HEALTHCHECK, "172.29.2.5/24"),
			task("starting", "n2", minkepb.TaskState_STARTING, run, minkepb.HealthState_NO_HEALTHCHECK, "172.29.2.6/24"),
			task("deadnode", "n3", run, run, minkepb.HealthState_NO_HEALTHCHECK, "172.29.3.2/24"),
		} {
			if err := tx.Create(tk); err != nil {
				return err
			}
		}
		return nil
	})
	var st *minkepb.NetworkState
	_ = f.store.View(func(tx raftstore.ReadTx) error { st = networkState(tx, "n1"); return nil })
	want := []string{"172.29.1.2", "172.29.2.2"}
	if len(st.GetServices()) != 2 || !equal(st.GetServices()[0].GetBackends(), want) || st.GetServices()[0].GetVirtualIp() != "172.30.0.1" {
		t.Fatalf("services %v; want web at 172.30.0.1 with backends %v, and idle", st.GetServices(), want)
	}
	if rec := st.GetServices()[1]; rec.GetName() != "idle" || len(rec.GetBackends()) != 0 || rec.GetVirtualIp() != "172.30.0.2" {
		t.Fatalf("service record %v; want idle at 172.30.0.2 without backends", rec)
	}
	if len(st.GetIngress()) != 1 || !equal(st.GetIngress()[0].GetBackends(), want) {
		t.Fatalf("ingress %v; want 8080 with backends %v", st.GetIngress(), want)
	}
	// Routes: to n2 only (n1 is this node, n3 is DOWN).
	if len(st.GetRoutes()) != 1 || st.GetRoutes()[0].GetSubnet() != "172.29.2.0/24" || st.GetRoutes()[0].GetVia() != "10.0.0.2" {
		t.Fatalf("routes %v; want 172.29.2.0/24 via 10.0.0.2", st.GetRoutes())
	}
	if st.GetEndpoints()["s"] == nil {
		t.Fatalf("n1 runs a task of s but got no endpoint for it")
	}
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func updateStore(t *testing.T, f *fixture, fn func(*raftstore.WriteTx) error) {
	t.Helper()
	if err := f.store.Update(t.Context(), fn); err != nil {
		t.Fatal(err)
	}
}
