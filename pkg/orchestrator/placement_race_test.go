package orchestrator

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

// hookStore runs hook (once) at the start of the pass's Update: a commit
// made by someone else while the pass commits.
type hookStore struct {
	*raftstore.Node
	hook atomic.Pointer[func()]
}

func (s *hookStore) Update(ctx context.Context, fn func(*raftstore.WriteTx) error) error {
	if h := s.hook.Swap(nil); h != nil {
		(*h)()
	}
	return s.Node.Update(ctx, fn)
}

// TestChangeDuringPassStartsAnother: a node that turns READY while a pass
// commits (its change drained by the pass's own catch-up) still gets the
// pending task a new pass places.
func TestChangeDuringPassStartsAnother(t *testing.T) {
	n := storetest.New(t)
	node := &minkepb.Node{Meta: &minkepb.Meta{Id: "node1"},
		Description: &minkepb.NodeDescription{Worker: true, Resources: &minkepb.Resources{NanoCpus: 2e9, MemoryBytes: 1 << 30}},
		Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_DOWN}}
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error { return tx.Create(node) })
	s := &hookStore{Node: n}
	hook := func() {
		storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
			cur := tx.Node("node1")
			c := &minkepb.Node{Meta: cur.GetMeta(), Description: cur.GetDescription(), Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}}
			return tx.Update(c)
		})
	}
	s.hook.Store(&hook)
	p := NewPlacement(s, time.Now, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Task{Meta: &minkepb.Meta{Id: "t1"}, ServiceId: "s", DesiredState: minkepb.TaskState_RUNNING,
			Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING}})
	})
	storetest.WaitFor(t, n, "t1 assigned after node1 became READY", func(tx raftstore.ReadTx) bool {
		return tx.Task("t1").GetNodeId() == "node1"
	})
}

// TestGlobalAndNewTasksInOneCommand: a global task and replicated tasks
// created in one command never reserve more than the node has: the
// global task, created on its node, holds its room before the others are
// placed.
func TestGlobalAndNewTasksInOneCommand(t *testing.T) {
	h := newHarness(t, 1) // node1: 2 CPUs
	spec := func(name string) *minkepb.ServiceSpec {
		return &minkepb.ServiceSpec{Name: name, Task: &minkepb.TaskSpec{
			Container: &minkepb.ContainerSpec{Image: "hello:latest"},
			Resources: &minkepb.ResourceRequirements{Reservations: &minkepb.Resources{NanoCpus: 1e9}}}}
	}
	h.update(func(tx *raftstore.WriteTx) error {
		g := spec("g")
		g.Mode = &minkepb.ServiceSpec_Global{Global: &minkepb.GlobalService{}}
		r := spec("r")
		r.Mode = &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 2}}
		if err := tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "g"}, Spec: g}); err != nil {
			return err
		}
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "r"}, Spec: r})
	})
	h.waitFor("3 tasks created, the one that does not fit explained", func(tx raftstore.ReadTx) bool {
		unplaced := 0
		for _, tk := range liveTasks(tx, "r") {
			if strings.Contains(tk.GetStatus().GetMessage(), "no suitable node") {
				unplaced++
			}
		}
		return len(liveTasks(tx, "g"))+len(liveTasks(tx, "r")) == 3 && unplaced == 1
	})
	_ = h.store.View(func(tx raftstore.ReadTx) error {
		var cpus int64
		for _, tk := range tx.TasksByNode("node1") {
			if tk.GetDesiredState() == minkepb.TaskState_RUNNING {
				cpus += tk.GetSpec().GetResources().GetReservations().GetNanoCpus()
			}
		}
		if cpus > 2e9 {
			t.Errorf("node1 reserved %d nano CPUs of 2e9", cpus)
		}
		return nil
	})
}
