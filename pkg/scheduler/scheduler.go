package scheduler

import (
	"cmp"
	"slices"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// NodeInfo is the scheduler's view of one node.
type NodeInfo struct {
	Node *minkepb.Node
	// Tasks are the node's active tasks (desired RUNNING, not terminal), used
	// for spread and reservations. Tasks whose desired or observed state is
	// past RUNNING are ignored, so a caller that passes them by mistake does
	// not leak capacity.
	Tasks []*minkepb.Task
}

// Assignment places one task on one node.
type Assignment struct {
	TaskID string
	NodeID string
}

// Plan is the outcome of one Schedule call.
type Plan struct {
	// Assignments are in the order the tasks were placed (by service ID,
	// then slot, then task ID).
	Assignments []Assignment
	// Unplaced maps task ID to a one-line explanation a user can act on.
	// It is never nil.
	Unplaced map[string]string
}

// Schedule places pending tasks on nodes and returns the plan.
//
// Pending tasks are taken in a deterministic order (service ID, slot, task
// ID). Each task goes to the best node that passes every filter; the view is
// updated after every placement, so tasks of one batch spread across nodes
// and their reservations accumulate. A node is never given more reserved CPU
// or memory than its description reports.
//
// Node IDs and task IDs are expected to be unique; nil nodes and nil tasks
// are ignored. The inputs are not modified.
func Schedule(nodes []NodeInfo, pending []*minkepb.Task) Plan {
	return newPipeline().schedule(nodes, pending)
}

// schedule runs the pipeline over one batch.
func (p *pipeline) schedule(nodes []NodeInfo, pending []*minkepb.Task) Plan {
	view := newClusterView(nodes)
	tasks := sortedTasks(pending)
	plan := Plan{
		Assignments: make([]Assignment, 0, len(tasks)),
		Unplaced:    make(map[string]string),
	}

	// svcCount[i] mirrors view.nodes[i].services[svc] for the service being
	// placed, so ranking does not pay a map lookup per node per task.
	svcCount := make([]int, len(view.nodes))
	curSvc := ""
	for i, t := range tasks {
		svc := t.GetServiceId()
		if i == 0 || svc != curSvc {
			curSvc = svc
			for j, n := range view.nodes {
				svcCount[j] = n.services[svc]
			}
		}
		ti := &taskInfo{task: t, req: taskReservations(t)}
		best := -1
		for j, n := range view.nodes {
			if !p.feasible(ti, n) {
				continue
			}
			if best < 0 || p.better(view.nodes, svcCount, j, best) {
				best = j
			}
		}
		if best < 0 {
			plan.Unplaced[t.GetMeta().GetId()] = p.explain(ti, view.nodes)
			continue
		}
		n := view.nodes[best]
		n.place(svc, ti.req)
		svcCount[best]++
		plan.Assignments = append(plan.Assignments, Assignment{TaskID: t.GetMeta().GetId(), NodeID: n.id})
	}
	return plan
}

// sortedTasks returns the non-nil pending tasks in placement order.
func sortedTasks(pending []*minkepb.Task) []*minkepb.Task {
	tasks := make([]*minkepb.Task, 0, len(pending))
	for _, t := range pending {
		if t != nil {
			tasks = append(tasks, t)
		}
	}
	slices.SortStableFunc(tasks, func(a, b *minkepb.Task) int {
		return cmp.Or(
			cmp.Compare(a.GetServiceId(), b.GetServiceId()),
			cmp.Compare(a.GetSlot(), b.GetSlot()),
			cmp.Compare(a.GetMeta().GetId(), b.GetMeta().GetId()),
		)
	})
	return tasks
}
