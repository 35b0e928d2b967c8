package scheduler

import (
	"fmt"

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

func mustConstraint(s string) Constraint {
	c, err := ParseConstraint(s)
	if err != nil {
		panic(err)
	}
	return c
}

func mustPreference(s string) Preference {
	p, err := ParsePreference(s)
	if err != nil {
		panic(err)
	}
	return p
}

// labels sets node labels from alternating keys and values.
func labels(kv ...string) nodeOpt {
	return func(n *minkepb.Node) {
		n.Spec.Labels = make(map[string]string)
		for i := 0; i+1 < len(kv); i += 2 {
			n.Spec.Labels[kv[i]] = kv[i+1]
		}
	}
}

func manager(n *minkepb.Node) { n.Role = minkepb.NodeRole_MANAGER }

// placementRules parses constraints and preferences ("spread=...") into a
// Placement; it panics on bad input, which is a bug in the test.
func placementRules(maxPerNode uint64, rules ...string) Placement {
	p := Placement{MaxReplicasPerNode: maxPerNode}
	for _, r := range rules {
		if len(r) > 7 && r[:7] == "spread=" {
			p.Preferences = append(p.Preferences, mustPreference(r))
		} else {
			p.Constraints = append(p.Constraints, mustConstraint(r))
		}
	}
	return p
}

// replicas returns n pending tasks of svc with slots 1..n.
func replicas(svc string, n int, nanoCPUs, mem int64) []*minkepb.Task {
	ts := make([]*minkepb.Task, n)
	for i := range ts {
		ts[i] = task(fmt.Sprintf("%s.%02d", svc, i+1), svc, uint64(i+1), nanoCPUs, mem)
	}
	return ts
}
