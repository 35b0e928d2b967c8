package raftstore

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestReportTaskStatus(t *testing.T) {
	n := openTestNode(t, "", "")
	t.Cleanup(func() { _ = n.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spec := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "busybox", Args: []string{"sleep", "1"}}}
	err := n.Update(ctx, func(tx *WriteTx) error {
		for _, id := range []string{"t1", "t2", "done"} {
			st := minkepb.TaskState_ASSIGNED
			if id == "done" {
				st = minkepb.TaskState_FAILED
			}
			if err := tx.Create(&minkepb.Task{Meta: &minkepb.Meta{Id: id}, NodeId: "n1", Spec: spec,
				DesiredState: minkepb.TaskState_RUNNING, Status: &minkepb.TaskStatus{State: st, Message: "x"}}); err != nil {
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
	report := func(node, task string, st minkepb.TaskState, msg string) *minkepb.TaskStatusReport {
		return &minkepb.TaskStatusReport{NodeId: node, TaskId: task, Status: &minkepb.TaskStatus{State: st, Message: msg}}
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	err = n.ReportTaskStatus(ctx, []*minkepb.TaskStatusReport{
		report("n1", "t1", minkepb.TaskState_RUNNING, "running"),
		report("n2", "t2", minkepb.TaskState_RUNNING, "another node's task"),
		report("n1", "done", minkepb.TaskState_RUNNING, "after a final state"),
		report("n1", "ghost", minkepb.TaskState_RUNNING, "unknown task"),
		report("n1", "t2", minkepb.TaskState_ACCEPTED, "accepted"),
		report("n1", "t2", minkepb.TaskState_NEW, "backwards, in the same command"),
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	var index uint64
	_ = n.View(func(tx ReadTx) error {
		for _, tc := range []struct {
			id   string
			want minkepb.TaskState
			msg  string
		}{
			{"t1", minkepb.TaskState_RUNNING, "running"},
			{"t2", minkepb.TaskState_ACCEPTED, "accepted"},
			{"done", minkepb.TaskState_FAILED, "x"},
		} {
			tk := tx.Task(tc.id)
			if tk.GetStatus().GetState() != tc.want || tk.GetStatus().GetMessage() != tc.msg {
				t.Errorf("%s: status %v, want %v %q", tc.id, tk.GetStatus(), tc.want, tc.msg)
			}
			if !proto.Equal(tk.GetSpec(), spec) || tk.GetNodeId() != "n1" || tk.GetDesiredState() != minkepb.TaskState_RUNNING {
				t.Errorf("%s: fields other than status changed: %v", tc.id, tk)
			}
		}
		t1 := tx.Task("t1")
		index = t1.GetMeta().GetVersion()
		if !t1.GetStatus().GetTimestamp().AsTime().Equal(now) || !t1.GetMeta().GetUpdatedAt().AsTime().Equal(now) {
			t.Errorf("timestamps %v / %v, want the command's %v", t1.GetStatus().GetTimestamp(), t1.GetMeta().GetUpdatedAt(), now)
		}
		if t1.GetMeta().GetCreatedAt() == nil || tx.Task("done").GetMeta().GetVersion() >= index {
			t.Errorf("meta: %v (done: %v)", t1.GetMeta(), tx.Task("done").GetMeta())
		}
		return nil
	})
	evs := sub.Drain()
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2 (t1, t2): %v", len(evs), evs)
	}
	for _, ev := range evs {
		if ev.Kind != EventUpdate || ev.Index != index {
			t.Errorf("event %v at %d, want an update at %d", ev.Kind, ev.Index, index)
		}
	}
	// A snapshot restores the same state: the compact command leaves
	// ordinary objects behind.
	snap := n.store.snapshot()
	restored := NewMemoryStore()
	if err := restored.restore(snap, index); err != nil {
		t.Fatal(err)
	}
	if again := restored.snapshot(); !proto.Equal(again, snap) {
		t.Error("snapshot after restore differs")
	}
}
