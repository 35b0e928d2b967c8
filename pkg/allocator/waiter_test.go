package allocator_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/allocator"
	"github.com/minke-io/minke/pkg/raftstore"
)

// TestWaiter: tasks created while their network is full wait (NEW, not
// scheduled); as tasks end, the oldest waiting ones get the freed
// addresses and go PENDING; a waiting task whose network is removed is
// rejected.
func TestWaiter(t *testing.T) {
	n := storetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = allocator.NewWaiter(n, time.Now, slog.New(slog.DiscardHandler)).Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		for i, subnet := range []string{"10.10.0.0/29", "10.10.1.0/29"} {
			if err := tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: fmt.Sprintf("net%d", i)}, Spec: &minkepb.NetworkSpec{Name: fmt.Sprintf("n%d", i)},
				Subnet: subnet, Gateway: strings.TrimSuffix(subnet, "0/29") + "1", Vni: uint32(4096 + i)}); err != nil {
				return err
			}
		}
		return nil
	})
	// /29: 8 addresses - network, broadcast, gateway = 5. Eight tasks, one
	// write each so that creation order is age order.
	var ids []string
	for i := 0; i < 8; i++ {
		net := "net0"
		if i == 7 {
			net = "net1"
		}
		task := newTask(net)
		task.DesiredState = minkepb.TaskState_RUNNING
		task.Status.Timestamp = timestamppb.Now()
		ids = append(ids, task.GetMeta().GetId())
		storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
			if err := allocator.AttachNetworks(tx, task); err != nil {
				return err
			}
			return tx.Create(task)
		})
	}
	state := func(id string) *minkepb.Task {
		var task *minkepb.Task
		_ = n.View(func(tx raftstore.ReadTx) error { task = tx.Task(id); return nil })
		return task
	}
	for i, id := range ids {
		want := minkepb.TaskState_PENDING
		if i == 5 || i == 6 {
			want = minkepb.TaskState_NEW
		}
		if got := state(id); got.GetStatus().GetState() != want {
			t.Fatalf("task %d: %v, want %v", i, got.GetStatus(), want)
		}
	}
	if msg := state(ids[5]).GetStatus().GetMessage(); !strings.Contains(msg, `no free address on network "n0" (10.10.0.0/29)`) {
		t.Fatalf("waiting task's message %q does not say why", msg)
	}

	// Task 0 fails and task 1 is deleted: tasks 5 and 6 get their addresses.
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		t0 := proto.Clone(tx.Task(ids[0])).(*minkepb.Task)
		t0.Status = &minkepb.TaskStatus{State: minkepb.TaskState_FAILED}
		if err := tx.Update(t0); err != nil {
			return err
		}
		return nil
	})
	storetest.WaitFor(t, n, "the oldest waiting task attached", func(tx raftstore.ReadTx) bool {
		return tx.Task(ids[5]).GetStatus().GetState() == minkepb.TaskState_PENDING
	})
	if got := state(ids[5]); got.GetNetworks()[0].GetAddresses()[0] != state(ids[0]).GetNetworks()[0].GetAddresses()[0] {
		t.Fatalf("task 5 got %v, want task 0's freed address", got.GetNetworks())
	}
	if state(ids[6]).GetStatus().GetState() != minkepb.TaskState_NEW {
		t.Fatalf("task 6 attached with no address free")
	}
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error { return tx.Delete(tx.Task(ids[1])) })
	storetest.WaitFor(t, n, "the next waiting task attached", func(tx raftstore.ReadTx) bool {
		return tx.Task(ids[6]).GetStatus().GetState() == minkepb.TaskState_PENDING && len(tx.Task(ids[6]).GetNetworks()) == 1
	})

	// A waiting task whose network is removed is rejected.
	var w *minkepb.Task
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		w = newTask("net0")
		w.DesiredState = minkepb.TaskState_RUNNING
		_ = allocator.AttachNetworks(tx, w)
		return tx.Create(w)
	})
	if state(w.GetMeta().GetId()).GetStatus().GetState() != minkepb.TaskState_NEW {
		t.Fatalf("task on a full network: %v", state(w.GetMeta().GetId()).GetStatus())
	}
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		for _, id := range ids[:7] {
			if task := tx.Task(id); task != nil {
				if err := tx.Delete(task); err != nil {
					return err
				}
			}
		}
		return tx.Delete(tx.Network("net0"))
	})
	storetest.WaitFor(t, n, "the waiting task rejected", func(tx raftstore.ReadTx) bool {
		s := tx.Task(w.GetMeta().GetId()).GetStatus()
		return s.GetState() == minkepb.TaskState_REJECTED && strings.Contains(s.GetErr(), "net0 no longer exists")
	})
}

// TestWaiterGlobalTask: a global service's task, bound to its node at
// creation, waits there (NEW) and goes ASSIGNED, not PENDING, once it has
// its address.
func TestWaiterGlobalTask(t *testing.T) {
	n := storetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = allocator.NewWaiter(n, time.Now, slog.New(slog.DiscardHandler)).Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: "net0"}, Spec: &minkepb.NetworkSpec{Name: "n0"},
			Subnet: "10.10.0.0/29", Gateway: "10.10.0.1", Vni: 4096})
	})
	var tasks []*minkepb.Task
	for i := 0; i < 6; i++ {
		task := newTask("net0")
		task.NodeId, task.DesiredState = fmt.Sprintf("node%d", i), minkepb.TaskState_RUNNING
		task.Status.State = minkepb.TaskState_ASSIGNED
		tasks = append(tasks, task)
		storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
			_ = allocator.AttachNetworks(tx, task)
			return tx.Create(task)
		})
	}
	last := tasks[5].GetMeta().GetId()
	var got *minkepb.Task
	_ = n.View(func(tx raftstore.ReadTx) error { got = tx.Task(last); return nil })
	if got.GetStatus().GetState() != minkepb.TaskState_NEW || got.GetNodeId() != "node5" {
		t.Fatalf("sixth task on a /29: %v on %q, want NEW on node5", got.GetStatus(), got.GetNodeId())
	}
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error { return tx.Delete(tx.Task(tasks[0].GetMeta().GetId())) })
	storetest.WaitFor(t, n, "the global task assigned with an address", func(tx raftstore.ReadTx) bool {
		task := tx.Task(last)
		return task.GetStatus().GetState() == minkepb.TaskState_ASSIGNED && len(task.GetNetworks()) == 1 && task.GetNodeId() == "node5"
	})
}
