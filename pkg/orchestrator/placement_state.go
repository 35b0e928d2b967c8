package orchestrator

import (
	"cmp"
	"maps"
	"slices"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/scheduler"
)

// placementState is what a scheduling pass reads, kept up to date from the
// store's events instead of re-read whole every pass: at 100,000 tasks a
// pass that listed every task and node spent most of its time walking the
// store's trees and building the per-node task lists again. It holds the
// store's own (immutable, shared) objects, so it costs a map entry per
// task, not a copy.
//
// It is built from a snapshot (load) and then fed every event committed
// after it (apply), in order; a reset (snapshot restore) cannot be
// applied and makes the owner load it again from a new subscription.
// Equal to a fresh load after any sequence of events: see
// TestPlacementStateMatchesReload.
type placementState struct {
	nodes map[string]*minkepb.Node
	// sorted caches the node IDs in order (nil when nodes changed).
	sorted []string
	// tasks holds, by ID, the tasks a pass cares about: pending ones and
	// those holding resources on a node (see classify).
	tasks map[string]*minkepb.Task
	// pending and pinned are the pending tasks, unpinned and by pinned node.
	pending map[string]*minkepb.Task
	pinned  map[string]map[string]*minkepb.Task
	// onNode are the active tasks by node, and lists their cached slices
	// (a node's entry is dropped when its tasks change).
	onNode map[string]map[string]*minkepb.Task
	lists  map[string][]*minkepb.Task
	// rules are the services' parsed placements.
	rules map[string]scheduler.Placement
	// tentative are tasks placed by PlaceNew whose creation is not
	// committed yet: they hold their room on their node meanwhile. The
	// task's first event replaces it.
	tentative map[string]bool
	// view is the scheduler's view PlaceNew places on, built on its first
	// call after a change of the nodes (nil until then) and following
	// every change of the active tasks since: so each call costs its own
	// tasks, not every task in the cluster.
	view *scheduler.View
}

// taskRole is why a pass tracks a task.
type taskRole uint8

const (
	roleNone taskRole = iota
	rolePending
	rolePinned
	roleActive
)

func classify(t *minkepb.Task) taskRole {
	switch {
	case pendingTask(t) && t.GetPinnedNodeId() != "":
		return rolePinned
	case pendingTask(t):
		return rolePending
	case activeOnNode(t):
		return roleActive
	}
	return roleNone
}

// loadPlacementState reads the whole state a pass needs.
func loadPlacementState(tx raftstore.ReadTx) *placementState {
	s := &placementState{
		nodes:   map[string]*minkepb.Node{},
		tasks:   map[string]*minkepb.Task{},
		pending: map[string]*minkepb.Task{},
		pinned:  map[string]map[string]*minkepb.Task{},
		onNode:  map[string]map[string]*minkepb.Task{},
		lists:   map[string][]*minkepb.Task{},
		rules:   map[string]scheduler.Placement{},

		tentative: map[string]bool{},
	}
	for _, n := range tx.Nodes() {
		s.setNode(n)
	}
	for _, svc := range tx.Services() {
		s.setService(svc)
	}
	for _, t := range tx.Tasks() {
		s.setTask(t)
	}
	return s
}

// apply records committed events. It returns false for a reset, after
// which the state must be loaded again.
func (s *placementState) apply(evs []raftstore.Event) bool {
	for _, ev := range evs {
		switch o := ev.Object.(type) {
		case *minkepb.Node:
			if ev.Kind == raftstore.EventRemove {
				s.removeNode(o.GetMeta().GetId())
			} else {
				s.setNode(o)
			}
		case *minkepb.Service:
			if ev.Kind == raftstore.EventRemove {
				delete(s.rules, o.GetMeta().GetId())
			} else {
				s.setService(o)
			}
		case *minkepb.Task:
			delete(s.tentative, o.GetMeta().GetId())
			s.removeTask(o.GetMeta().GetId())
			if ev.Kind != raftstore.EventRemove {
				s.setTask(o)
			}
		case nil:
			if ev.Kind == raftstore.EventReset {
				return false
			}
		}
	}
	return true
}

func (s *placementState) setNode(n *minkepb.Node) {
	s.view = nil
	id := n.GetMeta().GetId()
	if _, ok := s.nodes[id]; !ok {
		s.sorted = nil
	}
	s.nodes[id] = n
}

func (s *placementState) removeNode(id string) {
	s.view = nil
	if _, ok := s.nodes[id]; ok {
		delete(s.nodes, id)
		s.sorted = nil
	}
}

func (s *placementState) setService(svc *minkepb.Service) {
	s.rules[svc.GetMeta().GetId()] = placementOf(svc.GetSpec().GetTask().GetPlacement())
}

func (s *placementState) setTask(t *minkepb.Task) {
	id := t.GetMeta().GetId()
	switch classify(t) {
	case rolePending:
		s.pending[id] = t
	case rolePinned:
		addTo(s.pinned, t.GetPinnedNodeId(), id, t)
	case roleActive:
		s.addActive(t)
		if s.view != nil {
			s.view.AddTask(t.GetNodeId(), t)
		}
	default:
		return
	}
	s.tasks[id] = t
}

// addActive records t as active on its node.
func (s *placementState) addActive(t *minkepb.Task) {
	addTo(s.onNode, t.GetNodeId(), t.GetMeta().GetId(), t)
	delete(s.lists, t.GetNodeId())
}

func (s *placementState) removeTask(id string) {
	t, ok := s.tasks[id]
	if !ok {
		return
	}
	delete(s.tasks, id)
	switch classify(t) {
	case rolePending:
		delete(s.pending, id)
	case rolePinned:
		removeFrom(s.pinned, t.GetPinnedNodeId(), id)
	case roleActive:
		removeFrom(s.onNode, t.GetNodeId(), id)
		delete(s.lists, t.GetNodeId())
		if s.view != nil {
			s.view.RemoveTask(t.GetNodeId(), t)
		}
	}
}

func addTo(m map[string]map[string]*minkepb.Task, key, id string, t *minkepb.Task) {
	inner := m[key]
	if inner == nil {
		inner = map[string]*minkepb.Task{}
		m[key] = inner
	}
	inner[id] = t
}

func removeFrom(m map[string]map[string]*minkepb.Task, key, id string) {
	if inner := m[key]; inner != nil {
		delete(inner, id)
		if len(inner) == 0 {
			delete(m, key)
		}
	}
}

// setTentative counts t (placed by s.view, not yet committed) on its
// node; the view counts it already.
func (s *placementState) setTentative(t *minkepb.Task) {
	id := t.GetMeta().GetId()
	s.removeTask(id)
	s.addActive(t)
	s.tasks[id] = t
	s.tentative[id] = true
}

// dropTentative forgets a tentative placement that was not committed,
// and reports whether there was one; a task whose events arrived is no
// longer tentative and stays.
func (s *placementState) dropTentative(id string) bool {
	if !s.tentative[id] {
		return false
	}
	delete(s.tentative, id)
	s.removeTask(id)
	return true
}

// input returns a pass's input: the nodes in ID order with their active
// tasks (ordered by ID), the unpinned pending tasks, and the pinned ones
// by node (in no order: the scheduler sorts what it places). The outer
// slices and map are the caller's; the nodes' task lists and the tasks
// are shared and must not be modified.
func (s *placementState) input() (nodes []scheduler.NodeInfo, pending []*minkepb.Task, pinned map[string][]*minkepb.Task) {
	nodes = s.nodeInfos()
	pending = slices.Collect(maps.Values(s.pending))
	pinned = make(map[string][]*minkepb.Task, len(s.pinned))
	for id, ts := range s.pinned {
		pinned[id] = slices.Collect(maps.Values(ts))
	}
	return nodes, pending, pinned
}

// nodeInfos are the nodes in ID order with their active tasks (see
// input).
func (s *placementState) nodeInfos() []scheduler.NodeInfo {
	if s.sorted == nil {
		s.sorted = make([]string, 0, len(s.nodes))
		for id := range s.nodes {
			s.sorted = append(s.sorted, id)
		}
		slices.Sort(s.sorted)
	}
	nodes := make([]scheduler.NodeInfo, 0, len(s.sorted))
	for _, id := range s.sorted {
		nodes = append(nodes, scheduler.NodeInfo{Node: s.nodes[id], Tasks: s.nodeTasks(id)})
	}
	return nodes
}

// nodeTasks is a node's active tasks by ID, rebuilt only when they
// changed since the last pass. Callers must not modify it.
func (s *placementState) nodeTasks(id string) []*minkepb.Task {
	if l, ok := s.lists[id]; ok {
		return l
	}
	inner := s.onNode[id]
	if len(inner) == 0 {
		return nil
	}
	l := sortedByID(inner)
	s.lists[id] = l
	return l
}

func sortedByID(m map[string]*minkepb.Task) []*minkepb.Task {
	out := make([]*minkepb.Task, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *minkepb.Task) int { return cmp.Compare(a.GetMeta().GetId(), b.GetMeta().GetId()) })
	return out
}

// placement returns a service's rules (the zero Placement once it is
// gone).
func (s *placementState) placement(serviceID string) scheduler.Placement { return s.rules[serviceID] }
