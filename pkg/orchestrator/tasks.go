package orchestrator

import (
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Defaults that match swarm's.
const (
	DefaultRestartDelay     = 5 * time.Second
	DefaultHistoryRetention = 5
)

// IsTerminal reports whether a task state is final.
func IsTerminal(s minkepb.TaskState) bool { return s >= minkepb.TaskState_COMPLETE }

// newTask makes the task for one slot of svc. image is where workers pull
// the service's image from.
func newTask(svc *minkepb.Service, slot uint64, image string, now time.Time) *minkepb.Task {
	return &minkepb.Task{
		Meta:         &minkepb.Meta{Id: raftstore.NewID()},
		ServiceId:    svc.GetMeta().GetId(),
		ServiceName:  svc.GetSpec().GetName(),
		Slot:         slot,
		Spec:         proto.Clone(svc.GetSpec().GetTask()).(*minkepb.TaskSpec),
		Image:        image,
		DesiredState: minkepb.TaskState_RUNNING,
		Status: &minkepb.TaskStatus{
			Timestamp: timestamppb.New(now),
			State:     minkepb.TaskState_PENDING,
			Message:   "pending task scheduling",
		},
	}
}

// withDesired returns a copy of t with a new desired state.
func withDesired(t *minkepb.Task, d minkepb.TaskState) *minkepb.Task {
	c := proto.Clone(t).(*minkepb.Task)
	c.DesiredState = d
	return c
}

// taskEnd is when a task reached its current state.
func taskEnd(t *minkepb.Task) time.Time { return t.GetStatus().GetTimestamp().AsTime() }

// removable reports whether a task that should go can be deleted now: its
// worker has confirmed it stopped, or no worker ever got it, or its worker is
// gone.
func removable(t *minkepb.Task, node *minkepb.Node) bool {
	if IsTerminal(t.GetStatus().GetState()) || t.GetStatus().GetState() < minkepb.TaskState_ASSIGNED || t.GetNodeId() == "" {
		return true
	}
	return node == nil || node.GetStatus().GetState() == minkepb.NodeStatus_DOWN
}

// Ready reports whether a task has started for the purposes of updates
// and rebalancing: it runs and, if it has a healthcheck, is healthy.
func Ready(t *minkepb.Task) bool {
	if t.GetStatus().GetState() != minkepb.TaskState_RUNNING {
		return false
	}
	switch t.GetStatus().GetContainer().GetHealth() {
	case minkepb.HealthState_HEALTH_STARTING, minkepb.HealthState_UNHEALTHY:
		return false
	}
	return true
}

// failed reports whether a task ended in failure (not by completing or by
// being shut down).
func failed(t *minkepb.Task) bool {
	switch t.GetStatus().GetState() {
	case minkepb.TaskState_FAILED, minkepb.TaskState_REJECTED:
		return true
	}
	return false
}

// live reports whether a task is wanted running.
func live(t *minkepb.Task) bool { return t.GetDesiredState() == minkepb.TaskState_RUNNING }

// IsJob reports whether a service runs tasks to completion.
func IsJob(spec *minkepb.ServiceSpec) bool {
	switch spec.GetMode().(type) {
	case *minkepb.ServiceSpec_ReplicatedJob, *minkepb.ServiceSpec_GlobalJob:
		return true
	}
	return false
}

// IsGlobal reports whether a service runs one task per eligible node.
func IsGlobal(spec *minkepb.ServiceSpec) bool {
	switch spec.GetMode().(type) {
	case *minkepb.ServiceSpec_Global, *minkepb.ServiceSpec_GlobalJob:
		return true
	}
	return false
}

// upToDate reports whether a task runs its service's current spec.
func upToDate(t *minkepb.Task, svc *minkepb.Service) bool {
	// The store shares an equal service spec with its tasks (see
	// raftstore's shareSpec), so the comparison is usually by pointer.
	return t.GetSpec() == svc.GetSpec().GetTask() || proto.Equal(t.GetSpec(), svc.GetSpec().GetTask())
}

// byCreation sorts tasks oldest first (ties by ID, for determinism).
func byCreation(tasks []*minkepb.Task) {
	sort.SliceStable(tasks, func(i, j int) bool {
		a, b := tasks[i].GetMeta().GetCreatedAt().AsTime(), tasks[j].GetMeta().GetCreatedAt().AsTime()
		if !a.Equal(b) {
			return a.Before(b)
		}
		return tasks[i].GetMeta().GetId() < tasks[j].GetMeta().GetId()
	})
}
