package orchestrator

import (
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
