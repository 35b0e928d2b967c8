package raftstore

import (
	"context"
	"errors"
	"slices"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestDeferredTaskCreates: task creations are applied to the scratch
// transaction only when a read could see them, yet every read sees them;
// a change of another kind applies them first; a duplicate is refused
// whether a read applied it (before anything is proposed) or only the
// FSM saw it (the command changes nothing).
func TestDeferredTaskCreates(t *testing.T) {
	n := openTestNode(t, "", "")
	t.Cleanup(func() { _ = n.Shutdown() })
	ctx := context.Background()
	task := func(id, svc, node string) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceId: svc, NodeId: node, DesiredState: minkepb.TaskState_RUNNING,
			Status: &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED}}
	}
	ids := func(ts []*minkepb.Task) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.GetMeta().GetId())
		}
		return out
	}
	err := n.Update(ctx, func(tx *WriteTx) error {
		for _, tk := range []*minkepb.Task{task("a1", "sa", "n1"), task("a2", "sa", "n2"), task("b1", "sb", "n1")} {
			if err := tx.Create(tk); err != nil {
				return err
			}
		}
		if got := tx.TasksByService("other"); len(got) != 0 || tx.deferred.from != 0 {
			t.Errorf("a read no creation affects: %v, %d applied; want none", ids(got), tx.deferred.from)
		}
		if got := ids(tx.TasksByService("sa")); !slices.Equal(got, []string{"a1", "a2"}) {
			t.Errorf("TasksByService(sa) = %v", got)
		}
		if got := ids(tx.TasksByNode("n1")); !slices.Equal(got, []string{"a1", "b1"}) {
			t.Errorf("TasksByNode(n1) = %v", got)
		}
		if err := tx.Create(task("c1", "sc", "")); err != nil {
			return err
		}
		if tx.Task("c1") == nil || len(tx.Tasks()) != 4 {
			t.Errorf("Task(c1) %v, %d tasks; want c1 and 4", tx.Task("c1"), len(tx.Tasks()))
		}
		if err := tx.Create(task("d1", "sd", "")); err != nil {
			return err
		}
		// An update of a task created in the same transaction.
		d1 := task("d1", "sd", "n3")
		return tx.Update(d1)
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = n.View(func(tx ReadTx) error {
		if got := ids(tx.Tasks()); !slices.Equal(got, []string{"a1", "a2", "b1", "c1", "d1"}) || tx.Task("d1").GetNodeId() != "n3" {
			t.Errorf("stored %v, d1 on %q; want all five, d1 on n3", got, tx.Task("d1").GetNodeId())
		}
		return nil
	})

	for _, read := range []bool{true, false} {
		before := n.raft.LastIndex() // appended before applied: no lag behind Update
		err := n.Update(ctx, func(tx *WriteTx) error {
			if err := tx.Create(task("e1", "se", "")); err != nil {
				return err
			}
			if err := tx.Create(task("e1", "se", "")); err != nil {
				return err
			}
			if read {
				tx.TasksByService("se")
			}
			return nil
		})
		if !errors.Is(err, ErrExist) {
			t.Fatalf("read %v: a task created twice: %v, want ErrExist", read, err)
		}
		var e1 *minkepb.Task
		_ = n.View(func(tx ReadTx) error { e1 = tx.Task("e1"); return nil })
		if e1 != nil {
			t.Fatalf("read %v: the refused command stored e1", read)
		}
		if proposed := n.raft.LastIndex() != before; proposed == read {
			t.Errorf("read %v: proposed %v; a duplicate a read applied is refused before proposing", read, proposed)
		}
	}
}
