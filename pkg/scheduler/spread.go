package scheduler

import "slices"

// Ranking with spread preferences.
//
// A service's eligible nodes (those passing the node- and service-scope
// filters) form a tree: level k groups the nodes of its parent by the value
// of the service's k-th spread label; the leaves hold nodes. A task goes to
// the node that is smallest in the lexicographic order
//
//	(service tasks in its level-1 group, ..., in its innermost group,
//	 service tasks on the node, active tasks on the node, node ID)
//
// among the nodes that also pass the task-scope filters. Taking tasks one at
// a time, that fills the groups of each level evenly (water-filling, as
// SwarmKit's scheduleNTasksOnSubtree does for a whole group at once), and a
// group whose nodes are all refused drops out, as SwarmKit's "noRoom"
// branches do. Ties between groups go to the group holding the better node,
// so the remainder of an uneven split lands where the cluster is emptiest
// rather than always on the smallest label value.
//
// Every group keeps its children (or, for a leaf, its nodes) in a binary
// min-heap under that order, so the best node is found by following heap
// tops. Placing a task only raises keys on that path, and a refused node is
// only ever a heap top, so every update is a sift-down from the root of each
// heap on the path: O(depth · log n) per placement instead of a scan.

// shape is the spread tree of one (constraints, preferences) pair in one
// batch. It is built once and shared by every service with that pair.
type shape struct {
	// groups[0] is the root; a parent comes before its children.
	groups []shapeGroup
	// nodes holds the eligible node indices, the leaves' ranges in turn.
	nodes []int32
	// kids holds child group indices, the internal groups' ranges in turn.
	kids []int32
}

type shapeGroup struct {
	parent int32
	leaf   bool
	// lo, hi delimit the group's nodes (leaf) or kids (internal).
	lo, hi int32
}

// newShape groups the eligible nodes (ascending indices) by the values of
// the spread labels; values[k][node] is the value ID, below nvalues[k], of
// label k on a node. Groups are numbered level by level in the order their
// first node appears, so the shape depends only on the inputs, never on map
// order.
func newShape(eligible []int32, values [][]int32, nvalues []int32) *shape {
	s := &shape{groups: []shapeGroup{{parent: -1, leaf: len(values) == 0}}}
	leafOf := make([]int32, len(eligible)) // the node's group at the current level
	var lookup []int32
	for k, vals := range values {
		// The groups of level k-1 are s.groups[first:]; a child is found
		// at (parent-first)*nv+value, in a dense table while it stays
		// small, else in a map.
		if len(eligible) == 0 {
			break
		}
		first, nv := leafOf[0], nvalues[k] // node 0 opened the first group
		parents := int32(len(s.groups)) - first
		var sparse map[int64]int32
		if int64(parents)*int64(nv) <= int64(4*len(eligible)+1024) {
			lookup = slices.Repeat([]int32{-1}, int(parents*nv))
		} else {
			sparse = make(map[int64]int32)
		}
		for i, n := range eligible {
			e := int64(leafOf[i]-first)*int64(nv) + int64(vals[n])
			var c int32
			var ok bool
			if sparse != nil {
				c, ok = sparse[e]
			} else {
				c = lookup[e]
				ok = c >= 0
			}
			if !ok {
				c = int32(len(s.groups))
				s.groups = append(s.groups, shapeGroup{parent: leafOf[i], leaf: k == len(values)-1})
				if sparse != nil {
					sparse[e] = c
				} else {
					lookup[e] = c
				}
			}
			leafOf[i] = c
		}
	}
	// Counting sort of nodes by leaf and of groups by parent keeps each
	// range in ascending order.
	nodeCount := make([]int32, len(s.groups)+1)
	kidCount := make([]int32, len(s.groups)+1)
	for _, g := range leafOf {
		nodeCount[g+1]++
	}
	for g := 1; g < len(s.groups); g++ {
		kidCount[s.groups[g].parent+1]++
	}
	for g := range s.groups {
		nodeCount[g+1] += nodeCount[g]
		kidCount[g+1] += kidCount[g]
		gr := &s.groups[g]
		if gr.leaf {
			gr.lo, gr.hi = nodeCount[g], nodeCount[g]
		} else {
			gr.lo, gr.hi = kidCount[g], kidCount[g]
		}
	}
	s.nodes = make([]int32, len(eligible))
	for i, n := range eligible {
		gr := &s.groups[leafOf[i]]
		s.nodes[gr.hi] = n
		gr.hi++
	}
	s.kids = make([]int32, len(s.groups)-1)
	for g := 1; g < len(s.groups); g++ {
		gr := &s.groups[s.groups[g].parent]
		s.kids[gr.hi] = int32(g)
		gr.hi++
	}
	return s
}

// spreadTree is a shape with one service's counts and heaps: the ranking
// stage for a run of tasks of one service with equal reservations. Its
// buffers are reused from run to run.
type spreadTree struct {
	shape *shape
	// svc and total are the batch's per-node counts (of the service, and of
	// all active tasks); the tree reads them and place raises them.
	svc, total []int32

	nodes []int32 // shape.nodes, each leaf range a heap
	kids  []int32 // shape.kids, each internal range a heap
	size  []int32 // per group: live entries at the start of its range
	count []int32 // per group: the service's active tasks in it
	dead  []bool  // per group: no node left that may take the task
	path  []int32
}

// reset loads the shape and the current counts; every eligible node is a
// candidate again.
func (t *spreadTree) reset(s *shape, svc, total []int32) {
	t.shape, t.svc, t.total = s, svc, total
	t.nodes = append(t.nodes[:0], s.nodes...)
	t.kids = append(t.kids[:0], s.kids...)
	n := len(s.groups)
	t.size = resize(t.size, n)
	t.count = resize(t.count, n)
	t.dead = resize(t.dead, n)
	for g := n - 1; g >= 0; g-- {
		gr := &s.groups[g]
		t.size[g] = gr.hi - gr.lo
		if gr.leaf {
			var c int32
			for _, x := range s.nodes[gr.lo:gr.hi] {
				c += svc[x]
			}
			t.count[g] = c
		}
		if gr.parent >= 0 {
			t.count[gr.parent] += t.count[g]
		}
	}
	// Children come after parents, so a reverse pass heapifies every
	// group's children before the group itself is compared.
	for g := n - 1; g >= 0; g-- {
		for i := t.size[g]/2 - 1; i >= 0; i-- {
			t.siftDown(int32(g), i)
		}
		t.updateDead(int32(g))
	}
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// best returns the best remaining node, or -1 when none is left.
func (t *spreadTree) best() int32 {
	if t.dead[0] {
		return -1
	}
	t.path = t.path[:0]
	g := int32(0)
	for !t.shape.groups[g].leaf {
		t.path = append(t.path, g)
		g = t.kids[t.shape.groups[g].lo]
	}
	t.path = append(t.path, g)
	return t.nodes[t.shape.groups[g].lo]
}

// place records a task on the node best returned and re-ranks.
func (t *spreadTree) place(x int32) {
	t.svc[x]++
	t.total[x]++
	for _, g := range t.path {
		t.count[g]++
	}
	t.fixPath()
}

// refuse drops the node best returned; it is no candidate for the rest of
// this run.
func (t *spreadTree) refuse() {
	leaf := t.path[len(t.path)-1]
	lo := t.shape.groups[leaf].lo
	last := lo + t.size[leaf] - 1
	t.nodes[lo], t.nodes[last] = t.nodes[last], t.nodes[lo]
	t.size[leaf]--
	t.fixPath()
}

// fixPath restores the heaps along the last best path, innermost first,
// after the key of each group's top entry rose.
func (t *spreadTree) fixPath() {
	for i := len(t.path) - 1; i >= 0; i-- {
		g := t.path[i]
		t.siftDown(g, 0)
		t.updateDead(g)
	}
}

func (t *spreadTree) updateDead(g int32) {
	gr := &t.shape.groups[g]
	t.dead[g] = t.size[g] == 0 || (!gr.leaf && t.dead[t.kids[gr.lo]])
}

// siftDown restores the heap of group g from position i.
func (t *spreadTree) siftDown(g int32, i int32) {
	gr := &t.shape.groups[g]
	var h []int32
	var less func(a, b int32) bool
	if gr.leaf {
		h, less = t.nodes[gr.lo:gr.lo+t.size[g]], t.nodeLess
	} else {
		h, less = t.kids[gr.lo:gr.lo+t.size[g]], t.groupLess
	}
	n := int32(len(h))
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && less(h[c+1], h[c]) {
			c++
		}
		if !less(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// nodeLess is the ranking inside a group: fewest tasks of the service, then
// fewest active tasks, then the smallest node ID (indices follow IDs).
func (t *spreadTree) nodeLess(a, b int32) bool {
	if t.svc[a] != t.svc[b] {
		return t.svc[a] < t.svc[b]
	}
	if t.total[a] != t.total[b] {
		return t.total[a] < t.total[b]
	}
	return a < b
}

// groupLess orders sibling groups: live before dead, then fewest tasks of
// the service, then by their best members, level by level down to the
// nodes.
func (t *spreadTree) groupLess(a, b int32) bool {
	for {
		if t.dead[a] || t.dead[b] {
			if t.dead[a] != t.dead[b] {
				return t.dead[b]
			}
			return a < b
		}
		if t.count[a] != t.count[b] {
			return t.count[a] < t.count[b]
		}
		ga, gb := &t.shape.groups[a], &t.shape.groups[b]
		if ga.leaf {
			return t.nodeLess(t.nodes[ga.lo], t.nodes[gb.lo])
		}
		a, b = t.kids[ga.lo], t.kids[gb.lo]
	}
}
