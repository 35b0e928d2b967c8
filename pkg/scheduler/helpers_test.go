package scheduler

import (
	minkepb "github.com/minke-io/minke/api/minkepb"
)

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
	cpu = int64(1e9)
)

type nodeOpt func(*minkepb.Node)

func down(n *minkepb.Node)    { n.Status.State = minkepb.NodeStatus_DOWN }
func paused(n *minkepb.Node)  { n.Spec.Availability = minkepb.NodeSpec_PAUSE }
func drained(n *minkepb.Node) { n.Spec.Availability = minkepb.NodeSpec_DRAIN }

// node returns a READY, ACTIVE node with the given capacity.
func node(id string, nanoCPUs, mem int64, opts ...nodeOpt) *minkepb.Node {
	n := &minkepb.Node{
		Meta: &minkepb.Meta{Id: id},
		Spec: &minkepb.NodeSpec{Availability: minkepb.NodeSpec_ACTIVE},
		Description: &minkepb.NodeDescription{
			Worker:    true,
			Resources: &minkepb.Resources{NanoCpus: nanoCPUs, MemoryBytes: mem},
		},
		Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

// task returns a PENDING task reserving the given resources.
func task(id, svc string, slot uint64, nanoCPUs, mem int64) *minkepb.Task {
	return &minkepb.Task{
		Meta:      &minkepb.Meta{Id: id},
		ServiceId: svc,
		Slot:      slot,
		Spec: &minkepb.TaskSpec{Resources: &minkepb.ResourceRequirements{
			Reservations: &minkepb.Resources{NanoCpus: nanoCPUs, MemoryBytes: mem},
		}},
		DesiredState: minkepb.TaskState_RUNNING,
		Status:       &minkepb.TaskStatus{State: minkepb.TaskState_PENDING},
	}
}

// running returns t as an active task already placed on a node.
func running(t *minkepb.Task) *minkepb.Task {
	t.Status.State = minkepb.TaskState_RUNNING
	return t
}

func withState(t *minkepb.Task, desired, observed minkepb.TaskState) *minkepb.Task {
	t.DesiredState = desired
	t.Status.State = observed
	return t
}

// counts returns, per node ID, how many assignments the plan made.
func counts(p Plan) map[string]int {
	m := make(map[string]int)
	for _, a := range p.Assignments {
		m[a.NodeID]++
	}
	return m
}
