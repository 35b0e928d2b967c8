package orchestrator

import (
	"sort"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/scheduler"
)

// reconcileGlobal keeps one task of a global service on every eligible
// node: nodes that join later get one, nodes that become ineligible lose
// theirs.
func (r *Replicated) reconcileGlobal(tx *raftstore.WriteTx, svc *minkepb.Service, now time.Time, images map[string]string) (time.Time, error) {
	return r.reconcilePerNode(tx, svc, now, images, false)
}

// reconcilePerNode keeps a global service's or global job's slot on every
// node. For a job, only tasks of the current iteration count; live tasks
// of older iterations are shut down.
func (r *Replicated) reconcilePerNode(tx *raftstore.WriteTx, svc *minkepb.Service, now time.Time, images map[string]string, job bool) (time.Time, error) {
	constraints := placementOf(svc.GetSpec().GetTask().GetPlacement()).Constraints
	byNode := map[string][]*minkepb.Task{}
	for _, t := range tx.TasksByService(svc.GetMeta().GetId()) {
		if job && t.GetJobIteration() != svc.GetJobStatus().GetJobIteration() {
			if err := r.retireOldIteration(tx, t); err != nil {
				return time.Time{}, err
			}
			continue
		}
		byNode[slotNode(t)] = append(byNode[slotNode(t)], t)
	}
	for _, n := range tx.Nodes() {
		if _, ok := byNode[n.GetMeta().GetId()]; !ok {
			byNode[n.GetMeta().GetId()] = nil
		}
	}
	ids := make([]string, 0, len(byNode))
	for id := range byNode {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var wake time.Time
	for _, id := range ids {
		tasks := byNode[id]
		if id == "" { // cannot happen for global tasks; never leave one live
			for _, t := range tasks {
				if err := r.retire(tx, t, true); err != nil {
					return wake, err
				}
			}
			continue
		}
		byCreation(tasks)
		rules := globalRules(tx.Node(id), constraints)
		rules.job = job
		if rules.place && !slotRunning(tasks) && !fitsNode(tx, tx.Node(id), svc.GetSpec().GetTask()) {
			// Never overcommit a node's reservations: the task waits
			// PENDING, pinned to the node, for the scheduler to find room
			// there; its status says why meanwhile.
			rules.pin = true
		}
		w, err := r.reconcileSlot(tx, svc, slotRef{node: id}, tasks, now, images, rules)
		if err != nil {
			return wake, err
		}
		wake = earlier(wake, w)
	}
	return wake, nil
}

// slotNode is the node of a global service's slot that t fills: its node,
// or the node it waits for room on (see pinned).
func slotNode(t *minkepb.Task) string {
	if t.GetNodeId() != "" {
		return t.GetNodeId()
	}
	return t.GetPinnedNodeId()
}

// pinned turns a global slot's new task, made assigned to its node, into
// one that waits PENDING for room on that node: Placement assigns it there
// once its reservations fit, and explains meanwhile why they do not.
func pinned(t *minkepb.Task) *minkepb.Task {
	t.PinnedNodeId, t.NodeId = t.GetNodeId(), ""
	t.Status.State = minkepb.TaskState_PENDING
	t.Status.Message = "waiting for room on node " + t.GetPinnedNodeId()
	return t
}

// waitingForRoom reports whether t is a global task waiting, unassigned,
// for room on its node (see pinned).
func waitingForRoom(t *minkepb.Task) bool {
	return t.GetNodeId() == "" && t.GetPinnedNodeId() != ""
}

// globalRules says whether a global service's task belongs on node n: on
// every ready, active worker that meets the constraints; kept but not
// started on a paused node; removed from drained nodes, nodes that fail a
// constraint and nodes that are gone or no workers.
func globalRules(n *minkepb.Node, constraints []scheduler.Constraint) slotRules {
	if n == nil || !n.GetDescription().GetWorker() {
		return slotRules{evict: true}
	}
	for _, c := range constraints {
		if !c.Matches(n) {
			return slotRules{evict: true}
		}
	}
	switch n.GetSpec().GetAvailability() {
	case minkepb.NodeSpec_DRAIN:
		return slotRules{evict: true}
	case minkepb.NodeSpec_PAUSE:
		return slotRules{}
	}
	return slotRules{place: n.GetStatus().GetState() == minkepb.NodeStatus_READY}
}

// retireOldIteration shuts down a live task of a job's earlier run.
func (r *Replicated) retireOldIteration(tx *raftstore.WriteTx, t *minkepb.Task) error {
	if !live(t) {
		return nil
	}
	return r.retire(tx, t, false)
}

// fitsNode reports whether node n has the reservations of spec free,
// counting the tasks that hold resources on it as the scheduler does
// (wanted running and not ended).
func fitsNode(tx *raftstore.WriteTx, n *minkepb.Node, spec *minkepb.TaskSpec) bool {
	req := spec.GetResources().GetReservations()
	if req.GetNanoCpus() <= 0 && req.GetMemoryBytes() <= 0 {
		return true
	}
	var cpus, mem int64
	for _, t := range tx.TasksByNode(n.GetMeta().GetId()) {
		if t.GetDesiredState() <= minkepb.TaskState_RUNNING && t.GetStatus().GetState() <= minkepb.TaskState_RUNNING {
			r := t.GetSpec().GetResources().GetReservations()
			cpus += max(r.GetNanoCpus(), 0)
			mem += max(r.GetMemoryBytes(), 0)
		}
	}
	capacity := n.GetDescription().GetResources()
	return cpus+max(req.GetNanoCpus(), 0) <= capacity.GetNanoCpus() && mem+max(req.GetMemoryBytes(), 0) <= capacity.GetMemoryBytes()
}
