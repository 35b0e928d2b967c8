package scheduler

import (
	"fmt"
	"strings"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// taskInfo is a pending task with the values filters need precomputed.
type taskInfo struct {
	task      *minkepb.Task
	svc       string
	req       resources
	placement *servicePlacement
}

// scope says what a filter's answer depends on, which decides when the
// scheduler evaluates it (see schedule).
type scope uint8

const (
	// scopeNode: only the node; fixed for the whole batch.
	scopeNode scope = iota
	// scopeService: the node and the service's placement; fixed for the
	// whole batch.
	scopeService
	// scopeTask: the task and what the batch has placed so far. Such a
	// filter must be monotone: once it refuses a node for a task, it refuses
	// it for every later task of the same service with the same
	// reservations, because placements only add reservations and counts.
	scopeTask
)

// filter is one feasibility stage. Filters are stateless: check may be
// called any number of times in any order.
type filter interface {
	// name identifies the filter in tests and logs.
	name() string
	// scope says what check depends on.
	scope() scope
	// check reports whether the node can take the task.
	check(t *taskInfo, n *nodeState) bool
	// explain summarises, with numbers, why the refused nodes (all of which
	// failed check for t) cannot take the task, e.g. "2 not ready".
	explain(t *taskInfo, refused []*nodeState) string
}

var (
	_ filter = readyFilter{}
	_ filter = workerFilter{}
	_ filter = availabilityFilter{}
	_ filter = constraintFilter{}
	_ filter = maxReplicasFilter{}
	_ filter = cpuFilter{}
	_ filter = memoryFilter{}
)

// workerFilter refuses nodes that do not run the worker role (managers
// started without --worker).
type workerFilter struct{}

func (workerFilter) name() string { return "worker" }
func (workerFilter) scope() scope { return scopeNode }

func (workerFilter) check(_ *taskInfo, n *nodeState) bool {
	return n.node.GetDescription().GetWorker()
}

func (workerFilter) explain(_ *taskInfo, refused []*nodeState) string {
	return fmt.Sprintf("%d without the worker role", len(refused))
}

// readyFilter refuses nodes whose status is not READY, and nodes held
// READY while away for a planned restart (restart_deadline set): a new
// task would wait there until the node is back.
type readyFilter struct{}

func (readyFilter) name() string { return "ready" }
func (readyFilter) scope() scope { return scopeNode }

func (readyFilter) check(_ *taskInfo, n *nodeState) bool {
	st := n.node.GetStatus()
	return st.GetState() == minkepb.NodeStatus_READY && st.GetRestartDeadline() == nil
}

func (readyFilter) explain(_ *taskInfo, refused []*nodeState) string {
	return fmt.Sprintf("%d not ready", len(refused))
}

// availabilityFilter refuses nodes the operator paused or drained.
type availabilityFilter struct{}

func (availabilityFilter) name() string { return "availability" }
func (availabilityFilter) scope() scope { return scopeNode }

func (availabilityFilter) check(_ *taskInfo, n *nodeState) bool {
	return n.node.GetSpec().GetAvailability() == minkepb.NodeSpec_ACTIVE
}

func (availabilityFilter) explain(_ *taskInfo, refused []*nodeState) string {
	var paused, drained, other int
	for _, n := range refused {
		switch n.node.GetSpec().GetAvailability() {
		case minkepb.NodeSpec_PAUSE:
			paused++
		case minkepb.NodeSpec_DRAIN:
			drained++
		default:
			other++
		}
	}
	var parts []string
	if paused > 0 {
		parts = append(parts, fmt.Sprintf("%d paused", paused))
	}
	if drained > 0 {
		parts = append(parts, fmt.Sprintf("%d drained", drained))
	}
	if other > 0 {
		parts = append(parts, fmt.Sprintf("%d with unknown availability", other))
	}
	return strings.Join(parts, ", ")
}

// setFilter is an optional power of a service-scope filter: narrowing the
// whole node set at once, sharing work between services through the
// batch's caches. narrow must clear ok[i] exactly when check refuses node
// i, and leave other entries alone.
type setFilter interface {
	filter
	narrow(t *taskInfo, b *batch, ok []bool)
}

var _ setFilter = constraintFilter{}

// constraintFilter refuses nodes that fail one of the service's placement
// constraints.
type constraintFilter struct{}

func (constraintFilter) name() string { return "constraint" }
func (constraintFilter) scope() scope { return scopeService }

func (constraintFilter) check(t *taskInfo, n *nodeState) bool {
	return t.placement.failedConstraint(n.node) < 0
}

func (constraintFilter) narrow(t *taskInfo, b *batch, ok []bool) {
	for _, c := range t.placement.Constraints {
		m := b.matchesOf(c)
		for i := range ok {
			ok[i] = ok[i] && m[i]
		}
	}
}

// explain counts each refused node against the first constraint it fails,
// in the order the service lists them.
func (constraintFilter) explain(t *taskInfo, refused []*nodeState) string {
	cs := t.placement.Constraints
	failed := make([]int, len(cs))
	for _, n := range refused {
		if i := t.placement.failedConstraint(n.node); i >= 0 {
			failed[i]++
		}
	}
	var parts []string
	for i, c := range cs {
		if failed[i] > 0 {
			parts = append(parts, fmt.Sprintf("%d failed constraint %s", failed[i], c))
		}
	}
	return strings.Join(parts, ", ")
}

// maxReplicasFilter refuses nodes that already hold the service's
// MaxReplicasPerNode active tasks.
type maxReplicasFilter struct{}

func (maxReplicasFilter) name() string { return "max-replicas-per-node" }
func (maxReplicasFilter) scope() scope { return scopeTask }

func (maxReplicasFilter) check(t *taskInfo, n *nodeState) bool {
	m := t.placement.MaxReplicasPerNode
	return m == 0 || uint64(n.services[t.svc]) < m
}

func (maxReplicasFilter) explain(t *taskInfo, refused []*nodeState) string {
	return fmt.Sprintf("%d at max replicas per node (%d)", len(refused), t.placement.MaxReplicasPerNode)
}

// cpuFilter refuses nodes without enough unreserved CPU for the task.
type cpuFilter struct{}

func (cpuFilter) name() string { return "cpu" }
func (cpuFilter) scope() scope { return scopeTask }

func (cpuFilter) check(t *taskInfo, n *nodeState) bool {
	return t.req.nanoCPUs <= n.free().nanoCPUs
}

func (cpuFilter) explain(t *taskInfo, refused []*nodeState) string {
	most := refused[0].free().nanoCPUs
	for _, n := range refused[1:] {
		most = max(most, n.free().nanoCPUs)
	}
	noun := "CPUs"
	if t.req.nanoCPUs == 1e9 {
		noun = "CPU"
	}
	return fmt.Sprintf("%d insufficient cpu: %s %s reserved by task, at most %s free",
		len(refused), formatCPUs(t.req.nanoCPUs), noun, formatCPUs(max(most, 0)))
}

// memoryFilter refuses nodes without enough unreserved memory for the task.
type memoryFilter struct{}

func (memoryFilter) name() string { return "memory" }
func (memoryFilter) scope() scope { return scopeTask }

func (memoryFilter) check(t *taskInfo, n *nodeState) bool {
	return t.req.memoryBytes <= n.free().memoryBytes
}

func (memoryFilter) explain(t *taskInfo, refused []*nodeState) string {
	most := refused[0].free().memoryBytes
	for _, n := range refused[1:] {
		most = max(most, n.free().memoryBytes)
	}
	return fmt.Sprintf("%d insufficient memory: %s reserved by task, at most %s free",
		len(refused), formatBytes(t.req.memoryBytes), formatBytes(max(most, 0)))
}
