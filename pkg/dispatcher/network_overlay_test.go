package dispatcher

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

func overlayTask(id, svc, nodeID string, state minkepb.TaskState, nets ...string) *minkepb.Task {
	t := &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceId: svc, NodeId: nodeID, DesiredState: minkepb.TaskState_RUNNING,
		Status: &minkepb.TaskStatus{State: state}}
	for i := 0; i+1 < len(nets); i += 2 {
		t.Networks = append(t.Networks, &minkepb.NetworkAttachment{NetworkId: nets[i], Addresses: []string{nets[i+1]}})
	}
	return t
}

func peersOf(ov *minkepb.OverlayNetwork) string {
	var out []string
	for _, p := range ov.GetPeers() {
		out = append(out, fmt.Sprintf("%s=%s@%s/%s", p.GetTaskId(), p.GetAddress(), p.GetNodeId(), p.GetNodeAddr()))
	}
	return strings.Join(out, " ")
}

func TestOverlayState(t *testing.T) {
	f := newFixture(t)
	const run = minkepb.TaskState_RUNNING
	updateStore(t, f, func(tx *raftstore.WriteTx) error {
		for _, n := range []*minkepb.Node{
			{Meta: &minkepb.Meta{Id: "n1"}, Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY, Addr: "10.0.0.1"}},
			{Meta: &minkepb.Meta{Id: "n2"}, Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY, Addr: "10.0.0.2"}},
			{Meta: &minkepb.Meta{Id: "n3"}, Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_DOWN, Addr: "10.0.0.3"}},
		} {
			if err := tx.Create(n); err != nil {
				return err
			}
		}
		for _, nw := range []*minkepb.Network{
			{Meta: &minkepb.Meta{Id: "netA"}, Spec: &minkepb.NetworkSpec{Name: "a"}, Subnet: "10.10.0.0/24", Gateway: "10.10.0.1", Vni: 4096},
			{Meta: &minkepb.Meta{Id: "netB"}, Spec: &minkepb.NetworkSpec{Name: "b"}, Subnet: "10.10.1.0/24", Gateway: "10.10.1.1", Vni: 4097},
		} {
			if err := tx.Create(nw); err != nil {
				return err
			}
		}
		web := &minkepb.Service{Meta: &minkepb.Meta{Id: "web"}, Spec: &minkepb.ServiceSpec{Name: "web",
			Task: &minkepb.TaskSpec{Networks: []*minkepb.NetworkAttachmentConfig{{Target: "netA", Aliases: []string{"www"}}}}},
			Endpoint: &minkepb.Endpoint{VirtualIp: "172.30.0.1", VirtualIps: []*minkepb.EndpointVirtualIP{{NetworkId: "netA", Addr: "10.10.0.2/24"}}}}
		db := &minkepb.Service{Meta: &minkepb.Meta{Id: "db"}, Spec: &minkepb.ServiceSpec{Name: "db",
			Task: &minkepb.TaskSpec{Networks: []*minkepb.NetworkAttachmentConfig{{Target: "netB"}}}}}
		for _, s := range []*minkepb.Service{web, db} {
			if err := tx.Create(s); err != nil {
				return err
			}
		}
		unhealthy := overlayTask("w4", "web", "n2", run, "netA", "10.10.0.13/24")
		unhealthy.Status.Container = &minkepb.ContainerStatus{Health: minkepb.HealthState_UNHEALTHY}
		for _, tk := range []*minkepb.Task{
			overlayTask("w1", "web", "n1", run, "netA", "10.10.0.10/24"),
			overlayTask("w2", "web", "n2", run, "netA", "10.10.0.9/24"),
			overlayTask("w3", "web", "n3", run, "netA", "10.10.0.11/24"),                      // on a DOWN node
			overlayTask("w5", "web", "n2", minkepb.TaskState_FAILED, "netA", "10.10.0.12/24"), // terminal
			overlayTask("w6", "web", "n2", minkepb.TaskState_STARTING, "netA", "10.10.0.14/24"),
			unhealthy,
			overlayTask("d1", "db", "n2", run, "netB", "10.10.1.5/24"),
			overlayTask("x1", "", "n1", run), // no overlay
		} {
			if err := tx.Create(tk); err != nil {
				return err
			}
		}
		return nil
	})
	state := func(node string) *minkepb.NetworkState {
		var st *minkepb.NetworkState
		_ = f.store.View(func(tx raftstore.ReadTx) error { st = networkState(tx, node); return nil })
		return st
	}

	st := state("n1")
	if len(st.GetOverlays()) != 1 {
		t.Fatalf("n1 runs tasks on netA only, got overlays %v", st.GetOverlays())
	}
	a := st.GetOverlays()[0]
	if a.GetId() != "netA" || a.GetName() != "a" || a.GetSubnet() != "10.10.0.0/24" || a.GetGateway() != "10.10.0.1" || a.GetVni() != 4096 {
		t.Fatalf("netA: %v", a)
	}
	// Peers ordered by address; the DOWN node's and the failed task's are
	// left out; starting and unhealthy tasks are peers (they hold addresses).
	wantPeers := "w2=10.10.0.9/24@n2/10.0.0.2 w1=10.10.0.10/24@n1/10.0.0.1 w4=10.10.0.13/24@n2/10.0.0.2 w6=10.10.0.14/24@n2/10.0.0.2"
	if got := peersOf(a); got != wantPeers {
		t.Fatalf("peers\n got %s\nwant %s", got, wantPeers)
	}
	if len(a.GetServices()) != 1 {
		t.Fatalf("netA services: %v", a.GetServices())
	}
	rec := a.GetServices()[0]
	if rec.GetName() != "web" || rec.GetVirtualIp() != "10.10.0.2" || equal(rec.GetAliases(), nil) || rec.GetAliases()[0] != "www" ||
		!equal(rec.GetBackends(), []string{"10.10.0.9", "10.10.0.10"}) {
		t.Fatalf("web on netA: %v; want VIP 10.10.0.2, alias www, backends the serving tasks 10.10.0.9 and 10.10.0.10", rec)
	}

	st = state("n2")
	if len(st.GetOverlays()) != 2 || st.GetOverlays()[1].GetId() != "netB" {
		t.Fatalf("n2 overlays: %v", st.GetOverlays())
	}
	b := st.GetOverlays()[1]
	if peersOf(b) != "d1=10.10.1.5/24@n2/10.0.0.2" || len(b.GetServices()) != 1 || b.GetServices()[0].GetVirtualIp() != "" ||
		!equal(b.GetServices()[0].GetBackends(), []string{"10.10.1.5"}) {
		t.Fatalf("netB on n2: %v", b)
	}
	if len(state("n3").GetOverlays()) != 1 {
		t.Fatalf("n3 still has a live task on netA")
	}
}

// TestOverlayPeersReachOtherNodes: a task created, placed, or ended on one
// node changes the peers every other node on its network receives, and
// each node's session carries the change promptly.
func TestOverlayPeersReachOtherNodes(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"n1", "n2"} {
		putNode(t, f, id)
	}
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		for i, id := range []string{"n1", "n2"} {
			n := proto.Clone(tx.Node(id)).(*minkepb.Node)
			n.Status = &minkepb.NodeStatus{State: minkepb.NodeStatus_READY, Addr: fmt.Sprintf("10.0.0.%d", i+1)}
			if err := tx.Update(n); err != nil {
				return err
			}
		}
		if err := tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: "netA"}, Spec: &minkepb.NetworkSpec{Name: "a"},
			Subnet: "10.10.0.0/24", Gateway: "10.10.0.1", Vni: 4096}); err != nil {
			return err
		}
		return tx.Create(overlayTask("t1", "", "n1", minkepb.TaskState_RUNNING, "netA", "10.10.0.5/24"))
	})
	ctx, cancel := context.WithTimeout(asNode("n1"), 10*time.Second)
	defer cancel()
	stream, err := f.client.Session(ctx, &minkepb.SessionRequest{NodeId: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	// await reads session messages until n1's netA peers are want.
	await := func(want string) {
		t.Helper()
		last := "no message"
		for {
			msg, err := stream.Recv()
			if err != nil {
				t.Fatalf("waiting for peers %q (last %s): %v", want, last, err)
			}
			if msg.GetNetwork() == nil {
				continue
			}
			ovs := msg.GetNetwork().GetOverlays()
			last = fmt.Sprint(ovs)
			if len(ovs) == 1 && peersOf(ovs[0]) == want {
				return
			}
		}
	}
	await("t1=10.10.0.5/24@n1/10.0.0.1")

	// A task created unplaced is no peer yet; once placed on n2 it is.
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		return tx.Create(overlayTask("t2", "", "", minkepb.TaskState_PENDING, "netA", "10.10.0.6/24"))
	})
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		tk := proto.Clone(tx.Task("t2")).(*minkepb.Task)
		tk.NodeId, tk.Status = "n2", &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED}
		return tx.Update(tk)
	})
	start := time.Now()
	await("t1=10.10.0.5/24@n1/10.0.0.1 t2=10.10.0.6/24@n2/10.0.0.2")
	t.Logf("peer on n2 reached n1's session in %v", time.Since(start))

	// Its worker reports it failed (the status command): it leaves.
	if err := f.store.ReportTaskStatus(t.Context(), []*minkepb.TaskStatusReport{{NodeId: "n2", TaskId: "t2",
		Status: &minkepb.TaskStatus{State: minkepb.TaskState_FAILED}}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	await("t1=10.10.0.5/24@n1/10.0.0.1")

	// n2 goes DOWN with a live task on netA: its peer leaves too.
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		return tx.Create(overlayTask("t3", "", "n2", minkepb.TaskState_RUNNING, "netA", "10.10.0.7/24"))
	})
	await("t1=10.10.0.5/24@n1/10.0.0.1 t3=10.10.0.7/24@n2/10.0.0.2")
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		n := proto.Clone(tx.Node("n2")).(*minkepb.Node)
		n.Status.State = minkepb.NodeStatus_DOWN
		return tx.Update(n)
	})
	await("t1=10.10.0.5/24@n1/10.0.0.1")
}

func TestJoinRefusesContainerSubnetOverlappingANetwork(t *testing.T) {
	f := newFixture(t)
	updateStore(t, f, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: "netA"}, Spec: &minkepb.NetworkSpec{Name: "front"},
			Subnet: "10.10.0.0/24", Gateway: "10.10.0.1", Vni: 4096})
	})
	_, err := f.client.Join(withToken(workerToken), &minkepb.JoinRequest{Addr: "127.0.0.2",
		Description: &minkepb.NodeDescription{Hostname: "w", ContainerSubnet: "10.10.0.0/16"}})
	if err == nil || !strings.Contains(err.Error(), `overlay network "front"`) {
		t.Fatalf("join with a subnet over network front: %v", err)
	}
}

// TestWaitingTasksAreNotSent: a task bound to a node but still waiting for
// its overlay address (NEW) is not an assignment yet; once attached and
// ASSIGNED it is sent.
func TestWaitingTasksAreNotSent(t *testing.T) {
	f := newFixture(t)
	putNode(t, f, "n1")
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		if err := tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: "netA"}, Spec: &minkepb.NetworkSpec{Name: "a"},
			Subnet: "10.10.0.0/24", Gateway: "10.10.0.1", Vni: 4096}); err != nil {
			return err
		}
		if err := tx.Create(overlayTask("ready", "", "n1", minkepb.TaskState_ASSIGNED, "netA", "10.10.0.5/24")); err != nil {
			return err
		}
		waiting := overlayTask("waiting", "", "n1", minkepb.TaskState_NEW)
		waiting.Spec = &minkepb.TaskSpec{Networks: []*minkepb.NetworkAttachmentConfig{{Target: "netA"}}}
		return tx.Create(waiting)
	})
	ctx, cancel := context.WithTimeout(asNode("n1"), 10*time.Second)
	defer cancel()
	stream, err := f.client.Session(ctx, &minkepb.SessionRequest{NodeId: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(m *minkepb.SessionMessage) string {
		var out []string
		for _, tk := range m.GetTasks() {
			out = append(out, tk.GetMeta().GetId())
		}
		return strings.Join(out, ",")
	}
	msg, err := stream.Recv()
	if err != nil || ids(msg) != "ready" {
		t.Fatalf("first message tasks %q (%v), want only the attached one", ids(msg), err)
	}
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		tk := proto.Clone(tx.Task("waiting")).(*minkepb.Task)
		tk.Status = &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED}
		tk.Networks = []*minkepb.NetworkAttachment{{NetworkId: "netA", Addresses: []string{"10.10.0.6/24"}}}
		return tx.Update(tk)
	})
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("no message with the attached task: %v", err)
		}
		if ids(msg) == "ready,waiting" {
			return
		}
	}
}
