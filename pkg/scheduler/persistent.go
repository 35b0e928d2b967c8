package scheduler

import minkepb "github.com/minke-io/minke/api/minkepb"

// View is a cluster view kept between batches, for a caller that places
// small batches often (the orchestrator places every command's new tasks
// as it creates them): ScheduleWith builds its view from every node's
// tasks, which at 100,000 tasks cost more than placing a batch of a few
// thousand. A View is built once, keeps what its batches place, and
// follows the tasks its owner adds and removes; what the nodes alone
// decide (eligibility, constraint matches, spread groups) is computed
// once for its lifetime. A change of any node needs a new View.
//
// Schedule on a View gives the plan ScheduleWith gives on the same nodes
// and tasks (see TestViewMatchesScheduleWith). A View is not safe for
// concurrent use.
type View struct {
	p *pipeline
	b *batch
}

// NewView builds a view of nodes and their active tasks (see NodeInfo).
func NewView(nodes []NodeInfo) *View {
	p := newPipeline()
	return &View{p: p, b: newBatch(p, nodes)}
}

// Schedule places pending tasks as ScheduleWith does; the view keeps the
// placements, as active tasks of their nodes.
func (v *View) Schedule(pending []*minkepb.Task, placement func(serviceID string) Placement) Plan {
	return v.p.scheduleOn(v.b, pending, placement)
}

// AddTask counts t on node nodeID, as a NodeInfo task; inactive tasks and
// unknown nodes are ignored, as NewView ignores them.
func (v *View) AddTask(nodeID string, t *minkepb.Task) {
	x, ok := v.b.view.byID[nodeID]
	if !ok || !isActive(t) {
		return
	}
	v.b.view.nodes[x].place(t.GetServiceId(), taskReservations(t))
	v.b.view.placed(x, t.GetServiceId())
	v.b.total[x]++
}

// RemoveTask undoes AddTask (or a placement of Schedule) for t, which
// must be the task added, or one equal in service, reservations and
// state.
func (v *View) RemoveTask(nodeID string, t *minkepb.Task) {
	x, ok := v.b.view.byID[nodeID]
	if !ok || !isActive(t) {
		return
	}
	v.b.view.nodes[x].unplace(t.GetServiceId(), taskReservations(t))
	v.b.view.unplaced(x, t.GetServiceId())
	v.b.total[x]--
}

// Fits reports whether node nodeID has t's reservations free, counting
// what the view holds there; an unknown node has no room.
func (v *View) Fits(nodeID string, t *minkepb.Task) bool {
	x, ok := v.b.view.byID[nodeID]
	if !ok {
		return false
	}
	free, req := v.b.view.nodes[x].free(), taskReservations(t)
	return req.nanoCPUs <= free.nanoCPUs && req.memoryBytes <= free.memoryBytes
}
