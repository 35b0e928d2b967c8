package orchestrator

import (
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// TestIgnoredTaskEvents: which task events the controllers may skip.
func TestIgnoredTaskEvents(t *testing.T) {
	quietSvc := &minkepb.Service{Meta: &minkepb.Meta{Id: "s"}}
	done := &minkepb.Service{Meta: &minkepb.Meta{Id: "s"}, UpdateStatus: &minkepb.UpdateStatus{State: minkepb.UpdateStatus_COMPLETED}}
	updating := &minkepb.Service{Meta: &minkepb.Meta{Id: "s"}, UpdateStatus: &minkepb.UpdateStatus{State: minkepb.UpdateStatus_UPDATING}}
	paused := &minkepb.Service{Meta: &minkepb.Meta{Id: "s"}, UpdateStatus: &minkepb.UpdateStatus{State: minkepb.UpdateStatus_PAUSED}}
	rebalancing := &minkepb.Service{Meta: &minkepb.Meta{Id: "s"}, Rebalancing: true}
	task := func(state, desired minkepb.TaskState) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: "t"}, ServiceId: "s", NodeId: "n", DesiredState: desired,
			Status: &minkepb.TaskStatus{State: state}}
	}
	const run, shut = minkepb.TaskState_RUNNING, minkepb.TaskState_SHUTDOWN
	spec := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:2"}}
	withSpec := &minkepb.Service{Meta: &minkepb.Meta{Id: "s"}, Spec: &minkepb.ServiceSpec{Task: spec}}
	updatingWithSpec := &minkepb.Service{Meta: &minkepb.Meta{Id: "s"}, Spec: &minkepb.ServiceSpec{Task: spec},
		UpdateStatus: &minkepb.UpdateStatus{State: minkepb.UpdateStatus_UPDATING}}
	created := func(s *minkepb.TaskSpec) *minkepb.Task {
		t := task(minkepb.TaskState_PENDING, run)
		t.Spec = s
		return t
	}
	equal := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:2"}} // equal, not shared
	older := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:1"}}
	for _, tc := range []struct {
		name                      string
		kind                      raftstore.EventKind
		task                      *minkepb.Task
		svc                       *minkepb.Service
		replicated, updaterIgnore bool
	}{
		{"progress of a quiet service", raftstore.EventUpdate, task(minkepb.TaskState_PREPARING, run), quietSvc, true, true},
		{"assigned", raftstore.EventUpdate, task(minkepb.TaskState_ASSIGNED, run), done, true, true},
		{"progress while updating", raftstore.EventUpdate, task(minkepb.TaskState_STARTING, run), updating, true, false},
		{"running, quiet", raftstore.EventUpdate, task(run, run), quietSvc, true, true},
		{"running while updating (start-first pair)", raftstore.EventUpdate, task(run, run), updating, false, false},
		{"running while paused", raftstore.EventUpdate, task(run, run), paused, false, true},
		{"running while rebalancing", raftstore.EventUpdate, task(run, run), rebalancing, false, false},
		{"failed", raftstore.EventUpdate, task(minkepb.TaskState_FAILED, run), quietSvc, false, true},
		{"shut down by desire", raftstore.EventUpdate, task(run, shut), quietSvc, false, true},
		{"created from the service's spec", raftstore.EventCreate, created(spec), withSpec, false, true},
		{"created from an equal spec", raftstore.EventCreate, created(equal), withSpec, false, true},
		{"created from an older spec", raftstore.EventCreate, created(older), withSpec, false, false},
		{"created while updating", raftstore.EventCreate, created(spec), updatingWithSpec, false, false},
		{"created while rebalancing", raftstore.EventCreate, task(minkepb.TaskState_PENDING, run), rebalancing, false, false},
		{"created, service removed", raftstore.EventCreate, created(spec), nil, false, false},
		{"removed", raftstore.EventRemove, task(minkepb.TaskState_COMPLETE, shut), quietSvc, false, false},
		{"service removed", raftstore.EventUpdate, task(run, run), nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := raftstore.Event{Kind: tc.kind, Object: tc.task}
			if got := progressOnly(ev, tc.task, tc.svc); got != tc.replicated {
				t.Errorf("orchestrator ignores it: %v, want %v", got, tc.replicated)
			}
			if got := notUpdating(ev, tc.task, tc.svc); got != tc.updaterIgnore {
				t.Errorf("updater ignores it: %v, want %v", got, tc.updaterIgnore)
			}
		})
	}
}
