package scheduler

import (
	"fmt"
	"strings"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// taskInfo is a pending task with the values filters need precomputed.
type taskInfo struct {
	task *minkepb.Task
	req  resources
}

// filter is one feasibility stage. Filters are stateless: check may be
// called any number of times in any order.
type filter interface {
	// name identifies the filter in tests and logs.
	name() string
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
	_ filter = cpuFilter{}
	_ filter = memoryFilter{}
)

// workerFilter refuses nodes that do not run the worker role (managers
// started without --worker).
type workerFilter struct{}

func (workerFilter) name() string { return "worker" }

func (workerFilter) check(_ *taskInfo, n *nodeState) bool {
	return n.node.GetDescription().GetWorker()
}

func (workerFilter) explain(_ *taskInfo, refused []*nodeState) string {
	return fmt.Sprintf("%d without the worker role", len(refused))
}

// readyFilter refuses nodes whose status is not READY.
type readyFilter struct{}

func (readyFilter) name() string { return "ready" }

func (readyFilter) check(_ *taskInfo, n *nodeState) bool {
	return n.node.GetStatus().GetState() == minkepb.NodeStatus_READY
}

func (readyFilter) explain(_ *taskInfo, refused []*nodeState) string {
	return fmt.Sprintf("%d not ready", len(refused))
}

// availabilityFilter refuses nodes the operator paused or drained.
type availabilityFilter struct{}

func (availabilityFilter) name() string { return "availability" }

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

// cpuFilter refuses nodes without enough unreserved CPU for the task.
type cpuFilter struct{}

func (cpuFilter) name() string { return "cpu" }

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
