package raftstore

import (
	"context"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestAssign: a CommandAssign records exactly the assignments that are
// still valid when applied, stamps them, and publishes one event each.
func TestAssign(t *testing.T) {
	n := openTestNode(t, "", "")
	t.Cleanup(func() { _ = n.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spec := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "busybox"}}
	pending := func(id string) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceId: "s", Spec: spec, DesiredState: minkepb.TaskState_RUNNING,
			Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING, Message: "pending"}}
	}
	err := n.Update(ctx, func(tx *WriteTx) error {
		for id, st := range map[string]minkepb.NodeStatus_State{"ready": minkepb.NodeStatus_READY, "down": minkepb.NodeStatus_DOWN,
			"other": minkepb.NodeStatus_READY} {
			if err := tx.Create(&minkepb.Node{Meta: &minkepb.Meta{Id: id}, Status: &minkepb.NodeStatus{State: st}}); err != nil {
				return err
			}
		}
		placed := pending("placed")
		placed.NodeId, placed.Status.State = "other", minkepb.TaskState_ASSIGNED
		stopping := pending("stopping")
		stopping.DesiredState = minkepb.TaskState_SHUTDOWN
		pinned := pending("pinned")
		pinned.PinnedNodeId = "other"
		for _, tk := range []*minkepb.Task{pending("t1"), pending("t2"), pending("to-down"), placed, stopping, pinned} {
			if err := tx.Create(tk); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := n.ViewAndWatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	as := []*minkepb.TaskAssignment{
		{TaskId: "t1", NodeId: "ready"},
		{TaskId: "t2", NodeId: "ready"},
		{TaskId: "t2", NodeId: "other"}, // already assigned by the one before
		{TaskId: "to-down", NodeId: "down"},
		{TaskId: "placed", NodeId: "ready"},
		{TaskId: "stopping", NodeId: "ready"},
		{TaskId: "pinned", NodeId: "ready"}, // pinned elsewhere
		{TaskId: "ghost", NodeId: "ready"},
		{TaskId: "t1", NodeId: "gone"},
	}
	if err := n.Assign(ctx, as, "scheduler assigned task to node", now); err != nil {
		t.Fatal(err)
	}
	_ = n.View(func(tx ReadTx) error {
		for id, want := range map[string]string{"t1": "ready", "t2": "ready", "to-down": "", "placed": "other", "stopping": "", "pinned": ""} {
			tk := tx.Task(id)
			if tk.GetNodeId() != want {
				t.Errorf("%s on node %q, want %q", id, tk.GetNodeId(), want)
			}
			if want == "ready" {
				st := tk.GetStatus()
				if st.GetState() != minkepb.TaskState_ASSIGNED || st.GetMessage() != "scheduler assigned task to node" ||
					!st.GetTimestamp().AsTime().Equal(now) || !tk.GetMeta().GetUpdatedAt().AsTime().Equal(now) ||
					tk.GetSpec().GetContainer().GetImage() != "busybox" {
					t.Errorf("%s recorded as %v (updated %v)", id, tk, tk.GetMeta().GetUpdatedAt().AsTime())
				}
			}
		}
		if got := len(tx.TasksByNode("ready")); got != 2 {
			t.Errorf("node index: %d tasks on ready, want 2", got)
		}
		return nil
	})
	evs, err := sub.Next(ctx)
	if err != nil || len(evs) != 2 {
		t.Fatalf("events %v, %v; want the two recorded assignments", evs, err)
	}
}
