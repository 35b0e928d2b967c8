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

// Schedule places pending tasks on nodes and returns the plan. It is
// ScheduleWith without placement rules.
func Schedule(nodes []NodeInfo, pending []*minkepb.Task) Plan {
	return ScheduleWith(nodes, pending, nil)
}

// ScheduleWith places pending tasks on nodes, honouring each service's
// placement, and returns the plan.
//
// Pending tasks are taken in a deterministic order (service ID, slot, task
// ID). Each task goes to the best node that passes every filter; the view is
// updated after every placement, so tasks of one batch spread across nodes
// and their reservations accumulate. A node is never given more reserved CPU
// or memory than its description reports, nor more of a service's tasks
// than its MaxReplicasPerNode.
//
// "Best" is: with spread preferences, the node in the spread group (then
// nested group) holding the fewest of the service's active tasks among the
// groups that still have a node able to take the task; then, within the
// group, the node with the fewest tasks of the service, then the fewest
// active tasks, then the smallest ID. Only eligible nodes (ready, active,
// workers, satisfying the constraints) and their tasks count for spread.
//
// placement is called at most once per service ID in pending; nil, like a
// zero Placement, means no rules. It must be deterministic for the plan to
// be.
//
// Node IDs and task IDs are expected to be unique; nil nodes and nil tasks
// are ignored. The inputs are not modified.
func ScheduleWith(nodes []NodeInfo, pending []*minkepb.Task, placement func(serviceID string) Placement) Plan {
	return newPipeline().schedule(nodes, pending, placement)
}

// schedule runs the pipeline over one batch.
//
// The filters are evaluated by scope, each at the latest point its answer
// can change: node-scope filters once per node, service-scope filters once
// per node and distinct constraint list (cached in batch), and task-scope
// filters only on the node the ranking proposes. A task-scope refusal drops
// the node for the rest of the run, the consecutive tasks of one service
// with equal reservations; that is sound because those filters are monotone
// (see scopeTask). Tasks are sorted by service, so a run is usually a whole
// service, and a new run rebuilds the ranking from the cached spread shape.
// The result is the same as checking every filter on every node per task
// and taking the best-ranked survivor.
func (p *pipeline) schedule(nodes []NodeInfo, pending []*minkepb.Task, placementOf func(string) Placement) Plan {
	return p.scheduleOn(newBatch(p, nodes), pending, placementOf)
}

// scheduleOn places pending tasks on b's view, which keeps them.
func (p *pipeline) scheduleOn(b *batch, pending []*minkepb.Task, placementOf func(string) Placement) Plan {
	tasks := sortedTasks(pending)
	plan := Plan{
		Assignments: make([]Assignment, 0, len(tasks)),
		Unplaced:    make(map[string]string),
	}
	var (
		cur  *taskInfo // the run's first task; filters read only svc, req, placement
		tree spreadTree
		// failed is the run's explanation once a task of it found no node:
		// nothing changes until the next run, so the rest fail alike.
		failed string
	)
	for i, t := range tasks {
		svc, req := t.GetServiceId(), taskReservations(t)
		newService := i == 0 || svc != tasks[i-1].GetServiceId()
		if newService || req != cur.req {
			var pl *servicePlacement
			if newService {
				pl = placementFor(placementOf, svc)
				b.startService(svc)
			} else {
				pl = cur.placement
			}
			cur = &taskInfo{task: t, svc: svc, req: req, placement: pl}
			tree.reset(b.shapeFor(cur), b.svc, b.total)
			failed = ""
		}
		id := t.GetMeta().GetId()
		if failed != "" {
			plan.Unplaced[id] = failed
			continue
		}
		for {
			x := tree.best()
			if x < 0 {
				cur.task = t
				failed = p.explain(cur, b.view.nodes)
				plan.Unplaced[id] = failed
				break
			}
			n := b.view.nodes[x]
			if !p.passes(scopeTask, cur, n) {
				tree.refuse()
				continue
			}
			if b.svc[x] == 0 {
				b.touched = append(b.touched, x)
			}
			n.place(svc, req)
			b.view.placed(x, svc)
			tree.place(x)
			plan.Assignments = append(plan.Assignments, Assignment{TaskID: id, NodeID: n.id})
			break
		}
	}
	return plan
}

// placementFor asks placementOf, if any, for a service's placement.
func placementFor(placementOf func(string) Placement, svc string) *servicePlacement {
	var pl Placement
	if placementOf != nil {
		pl = placementOf(svc)
	}
	return newServicePlacement(pl)
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
