package raftstore

import (
	"testing"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestTasksShareSpec: a task stored with its service's spec, or with its
// own previous spec, holds the stored spec itself; a task with another
// spec keeps its own. Equal content either way.
func TestTasksShareSpec(t *testing.T) {
	s := NewMemoryStore()
	spec := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:1"},
		Placement: &minkepb.Placement{Constraints: []string{"node.role==worker"}}}
	other := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:2"}}
	create := func(index uint64, objs ...proto.Message) {
		t.Helper()
		cmd := &minkepb.StoreActions{}
		for _, o := range objs {
			a, err := newAction(minkepb.StoreAction_CREATE, proto.Clone(o))
			if err != nil {
				t.Fatal(err)
			}
			cmd.Actions = append(cmd.Actions, a)
		}
		if err := s.apply(index, cmd); err != nil {
			t.Fatal(err)
		}
	}
	create(1, &minkepb.Service{Meta: &minkepb.Meta{Id: "s1"}, Spec: &minkepb.ServiceSpec{Name: "web", Task: spec}})
	create(2, &minkepb.Task{Meta: &minkepb.Meta{Id: "t1"}, ServiceId: "s1", Spec: spec},
		&minkepb.Task{Meta: &minkepb.Meta{Id: "t2"}, ServiceId: "s1", Spec: spec},
		&minkepb.Task{Meta: &minkepb.Meta{Id: "t3"}, ServiceId: "s1", Spec: other})
	var svc *minkepb.Service
	var t1, t2, t3 *minkepb.Task
	read := func() {
		_ = s.View(func(tx ReadTx) error {
			svc, t1, t2, t3 = tx.Service("s1"), tx.Task("t1"), tx.Task("t2"), tx.Task("t3")
			return nil
		})
	}
	read()
	if t1.GetSpec() != svc.GetSpec().GetTask() || t2.GetSpec() != svc.GetSpec().GetTask() {
		t.Fatal("tasks with the service's spec do not share it")
	}
	if t3.GetSpec() == svc.GetSpec().GetTask() || !proto.Equal(t3.GetSpec(), other) {
		t.Fatalf("a task with another spec holds %v", t3.GetSpec())
	}
	// An update carries a decoded copy of the spec; the stored task keeps
	// the shared one.
	u := proto.Clone(t3).(*minkepb.Task)
	u.DesiredState = minkepb.TaskState_SHUTDOWN
	before := t3.GetSpec()
	if err := s.apply(3, &minkepb.StoreActions{Actions: []*minkepb.StoreAction{{Kind: minkepb.StoreAction_UPDATE,
		Target: &minkepb.StoreAction_Task{Task: u}}}}); err != nil {
		t.Fatal(err)
	}
	read()
	if t3.GetSpec() != before || t3.GetDesiredState() != minkepb.TaskState_SHUTDOWN {
		t.Fatalf("updated task: spec shared %v, desired %v", t3.GetSpec() == before, t3.GetDesiredState())
	}
}

// TestRestoreSharesSpec: tasks restored from a snapshot share their
// service's spec when equal.
func TestRestoreSharesSpec(t *testing.T) {
	s := NewMemoryStore()
	spec := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:1"}}
	snap := &minkepb.Snapshot{FormatVersion: snapshotFormat,
		Services: []*minkepb.Service{{Meta: &minkepb.Meta{Id: "s1"}, Spec: &minkepb.ServiceSpec{Name: "web", Task: spec}}},
		Tasks: []*minkepb.Task{{Meta: &minkepb.Meta{Id: "t1"}, ServiceId: "s1", Spec: proto.Clone(spec).(*minkepb.TaskSpec)},
			{Meta: &minkepb.Meta{Id: "t2"}, ServiceId: "s1", Spec: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:2"}}}}}
	if err := s.restore(snap, 5); err != nil {
		t.Fatal(err)
	}
	_ = s.View(func(tx ReadTx) error {
		if tx.Task("t1").GetSpec() != tx.Service("s1").GetSpec().GetTask() {
			t.Error("restored task with its service's spec does not share it")
		}
		if got := tx.Task("t2").GetSpec().GetContainer().GetImage(); got != "web:2" {
			t.Errorf("restored task with another spec has image %q", got)
		}
		return nil
	})
}
