package orchestrator

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

// TestNewTasksCommittedAssigned: with the orchestrator placing through the
// scheduler (as the manager runs them), a new service's tasks are stored
// ASSIGNED, spread over the nodes, from their first commit: none is ever
// stored pending, and no assignment command follows.
func TestNewTasksCommittedAssigned(t *testing.T) {
	h := newHarness(t, 3)
	h.waitPlacing()
	sub, err := h.store.ViewAndWatch(func(raftstore.ReadTx) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	createService(h, 6)
	first := map[string]*minkepb.Task{} // each task's first stored version
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(first) < 6 {
		evs, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("%d of 6 tasks seen: %v", len(first), err)
		}
		for _, ev := range evs {
			if tk, ok := ev.Object.(*minkepb.Task); ok && first[tk.GetMeta().GetId()] == nil {
				first[tk.GetMeta().GetId()] = tk
			}
		}
	}
	perNode := map[string]int{}
	for id, tk := range first {
		if tk.GetNodeId() == "" || tk.GetStatus().GetState() != minkepb.TaskState_ASSIGNED {
			t.Errorf("task %s first stored on node %q in %v; want ASSIGNED to a node", id, tk.GetNodeId(), tk.GetStatus().GetState())
		}
		perNode[tk.GetNodeId()]++
	}
	if len(perNode) != 3 {
		t.Errorf("tasks per node %v: want the 6 spread over the 3 nodes", perNode)
	}
}

// TestPlaceNewHoldsRoomUntilRelease: a placement made for a creation not
// yet committed holds its room on the node, for the next PlaceNew and for
// the scheduling passes, until Release drops it; a task that does not fit
// is left unplaced.
func TestPlaceNewHoldsRoomUntilRelease(t *testing.T) {
	n, p, node := runningPlacement(t, "a")
	if node != "node1" {
		t.Fatalf("a placed on %q, want node1", node)
	}
	if again, _ := p.PlaceNew([]*minkepb.Task{bigTask("b")}, nil); len(again) != 0 {
		t.Fatalf("a second 1.5-CPU task placed on the 2-CPU node that a holds: %v", again)
	}
	// A pending task in the store waits too: the pass sees a's room taken.
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error { return tx.Create(bigTask("c")) })
	storetest.WaitFor(t, n, "c explained as unplaced", func(tx raftstore.ReadTx) bool {
		return strings.Contains(tx.Task("c").GetStatus().GetMessage(), "no suitable node")
	})
	if c := taskOf(t, n, "c"); c.GetNodeId() != "" {
		t.Fatalf("c assigned to %s while a holds the room", c.GetNodeId())
	}
	// a's creation failed: its room is given back, and c gets it.
	p.Release([]string{"a"})
	storetest.WaitFor(t, n, "c assigned once a was released", func(tx raftstore.ReadTx) bool {
		return tx.Task("c").GetNodeId() == "node1"
	})
	if again, _ := p.PlaceNew([]*minkepb.Task{bigTask("d")}, nil); len(again) != 0 {
		t.Fatalf("d placed where c runs: %v", again)
	}
}

func taskOf(t *testing.T, n *raftstore.Node, id string) (out *minkepb.Task) {
	t.Helper()
	_ = n.View(func(tx raftstore.ReadTx) error { out = tx.Task(id); return nil })
	if out == nil {
		t.Fatalf("task %s not stored", id)
	}
	return out
}

// TestReleaseKeepsCommittedPlacement: once the creation of a task placed
// by PlaceNew commits, Release leaves its room taken: the committed task
// replaced the tentative one.
func TestReleaseKeepsCommittedPlacement(t *testing.T) {
	n, p, node := runningPlacement(t, "a")
	a := bigTask("a")
	a.NodeId, a.Status.State = node, minkepb.TaskState_ASSIGNED
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error { return tx.Create(a) })
	p.Release([]string{"a"})
	if again, _ := p.PlaceNew([]*minkepb.Task{bigTask("b")}, nil); len(again) != 0 {
		t.Fatalf("b placed where the committed a runs: %v", again)
	}
	// And a pass sees it too.
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error { return tx.Create(bigTask("c")) })
	storetest.WaitFor(t, n, "c explained as unplaced", func(tx raftstore.ReadTx) bool {
		return strings.Contains(tx.Task("c").GetStatus().GetMessage(), "no suitable node")
	})
}

// runningPlacement runs a Placement on a store with one READY 2-CPU node,
// and waits until PlaceNew places first (a 1.5-CPU task, as bigTask
// builds) there; it returns the store, the controller and where first
// went.
func runningPlacement(t *testing.T, first string) (*raftstore.Node, *Placement, string) {
	t.Helper()
	n := storetest.New(t)
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Node{Meta: &minkepb.Meta{Id: "node1"},
			Description: &minkepb.NodeDescription{Worker: true, Resources: &minkepb.Resources{NanoCpus: 2e9, MemoryBytes: 1 << 30}},
			Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}})
	})
	p := NewPlacement(n, time.Now, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// PlaceNew places nothing until the controller runs.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got, _ := p.PlaceNew([]*minkepb.Task{bigTask(first)}, nil); len(got) > 0 {
			return n, p, got[first]
		}
		if time.Now().After(deadline) {
			t.Fatal("PlaceNew placed nothing within 10s")
		}
	}
}

// bigTask is a pending task of its own service reserving 1.5 CPUs.
func bigTask(id string) *minkepb.Task {
	return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceId: "svc-" + id, DesiredState: minkepb.TaskState_RUNNING,
		Spec:   &minkepb.TaskSpec{Resources: &minkepb.ResourceRequirements{Reservations: &minkepb.Resources{NanoCpus: 15e8}}},
		Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING}}
}

// TestPlaceNewChecksRoomOfTasksCreatedOnANode: a task another command
// creates on a node (a global service's, whose orchestrator read the
// store) is refused the room that an uncommitted placement holds there,
// and holds the room it gets.
func TestPlaceNewChecksRoomOfTasksCreatedOnANode(t *testing.T) {
	_, p, node := runningPlacement(t, "a") // 1.5 of node1's 2 CPUs, not committed
	onNode := func(id string, nanoCPUs int64) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceId: "global", NodeId: node, DesiredState: minkepb.TaskState_RUNNING,
			Spec:   &minkepb.TaskSpec{Resources: &minkepb.ResourceRequirements{Reservations: &minkepb.Resources{NanoCpus: nanoCPUs}}},
			Status: &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED}}
	}
	placed, full := p.PlaceNew(nil, []*minkepb.Task{onNode("g1", 1e9)})
	if len(placed) != 0 || len(full) != 1 || full[0] != "g1" {
		t.Fatalf("a 1-CPU task created on the node a fills: placed %v, full %v; want it full", placed, full)
	}
	placed, full = p.PlaceNew(nil, []*minkepb.Task{onNode("g2", 4e8)})
	if placed["g2"] != node || len(full) != 0 {
		t.Fatalf("a 0.4-CPU task created there: placed %v, full %v; want it placed", placed, full)
	}
	if _, full = p.PlaceNew(nil, []*minkepb.Task{onNode("g3", 4e8)}); len(full) != 1 {
		t.Fatalf("a second 0.4-CPU task fit where g2 holds the room: full %v", full)
	}
}
