package raftstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestAssignCreated: the tasks a transaction creates pending, unassigned
// and unpinned are offered to place, and those it places are committed
// ASSIGNED to its node in the same command; pinned, assigned, ended or
// updated tasks are not offered, unplaced ones stay pending, and no
// change may follow.
func TestAssignCreated(t *testing.T) {
	n := openTestNode(t, "", "")
	t.Cleanup(func() { _ = n.Shutdown() })
	ctx := context.Background()
	pending := func(id string) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceId: "s1", DesiredState: minkepb.TaskState_RUNNING,
			Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING, Message: "pending task scheduling"}}
	}
	if err := n.Update(ctx, func(tx *WriteTx) error { return tx.Create(pending("old")) }); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var offered, counted []string
	err := n.Update(ctx, func(tx *WriteTx) error {
		pinned := pending("pinned")
		pinned.PinnedNodeId = "n9"
		assigned := pending("assigned")
		assigned.NodeId, assigned.Status.State = "n8", minkepb.TaskState_ASSIGNED
		shutdown := pending("shutdown")
		shutdown.DesiredState = minkepb.TaskState_SHUTDOWN
		old := pending("old")
		old.Meta.Version = tx.Task("old").GetMeta().GetVersion()
		old.Status.Message = "still pending"
		for _, o := range []*minkepb.Task{pending("a"), pending("b"), pinned, assigned, shutdown} {
			if err := tx.Create(o); err != nil {
				return err
			}
		}
		if err := tx.Update(old); err != nil {
			return err
		}
		tx.AssignCreated(func(pending, onNode []*minkepb.Task) (map[string]string, []string) {
			for _, t := range pending {
				offered = append(offered, t.GetMeta().GetId())
			}
			for _, t := range onNode {
				counted = append(counted, t.GetMeta().GetId())
			}
			return map[string]string{"a": "n1", "assigned": "n7"}, nil
		}, "scheduler assigned task to node", at)
		if err := tx.Create(pending("late")); !errors.Is(err, ErrInvalidObject) {
			t.Errorf("Create after AssignCreated: %v, want ErrInvalidObject", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(offered); !slices.Equal(offered, []string{"a", "b"}) {
		t.Fatalf("offered %v, want the two new pending tasks [a b]", offered)
	}
	if !slices.Equal(counted, []string{"assigned"}) {
		t.Fatalf("tasks created on a node: %v, want [assigned]", counted)
	}
	_ = n.View(func(tx ReadTx) error {
		a := tx.Task("a")
		if a.GetNodeId() != "n1" || a.GetStatus().GetState() != minkepb.TaskState_ASSIGNED ||
			a.GetStatus().GetMessage() != "scheduler assigned task to node" || !a.GetStatus().GetTimestamp().AsTime().Equal(at) {
			t.Errorf("placed task stored as node %q, status %v", a.GetNodeId(), a.GetStatus())
		}
		if len(tx.TasksByNode("n1")) != 1 {
			t.Errorf("node n1's tasks: %v, want the placed one", tx.TasksByNode("n1"))
		}
		for id, node := range map[string]string{"b": "", "pinned": "", "assigned": "n8", "shutdown": "", "old": ""} {
			if got := tx.Task(id); got.GetNodeId() != node || (node == "" && got.GetStatus().GetState() != minkepb.TaskState_PENDING) {
				t.Errorf("task %s stored on node %q in %v; want node %q, unchanged", id, got.GetNodeId(), got.GetStatus().GetState(), node)
			}
		}
		if tx.Task("late") != nil {
			t.Error("a change after AssignCreated was committed")
		}
		return nil
	})
}

// TestAssignCreatedPinsTaskWithoutRoom: a task created on a node that
// place finds full is committed pending, pinned to that node, to wait
// there for room.
func TestAssignCreatedPinsTaskWithoutRoom(t *testing.T) {
	n := openTestNode(t, "", "")
	t.Cleanup(func() { _ = n.Shutdown() })
	err := n.Update(context.Background(), func(tx *WriteTx) error {
		g := &minkepb.Task{Meta: &minkepb.Meta{Id: "g"}, ServiceId: "global", NodeId: "n1", DesiredState: minkepb.TaskState_RUNNING,
			Status: &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED}}
		if err := tx.Create(g); err != nil {
			return err
		}
		tx.AssignCreated(func(pending, onNode []*minkepb.Task) (map[string]string, []string) {
			if len(pending) != 0 || len(onNode) != 1 {
				t.Errorf("offered %d pending and %d on a node, want 0 and 1", len(pending), len(onNode))
			}
			return nil, []string{"g"}
		}, "scheduler assigned task to node", time.Now())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = n.View(func(tx ReadTx) error {
		g := tx.Task("g")
		if g.GetNodeId() != "" || g.GetPinnedNodeId() != "n1" || g.GetStatus().GetState() != minkepb.TaskState_PENDING ||
			g.GetStatus().GetMessage() != "waiting for room on node n1" {
			t.Errorf("stored on node %q, pinned to %q, %v; want pending, pinned to n1, waiting for room", g.GetNodeId(),
				g.GetPinnedNodeId(), g.GetStatus())
		}
		return nil
	})
}
