package scheduler

import "slices"

// batch holds one schedule call's view and the caches that keep placement
// from doing per-node work per task: filter answers that cannot change
// during the batch, label values, and spread shapes.
type batch struct {
	p    *pipeline
	view *clusterView
	// nodeOK[i]: node i passes the node-scope filters.
	nodeOK []bool
	// svc[i] counts the current service's active tasks on node i; touched
	// lists the nodes where it may be non-zero. total[i] counts all active
	// tasks on node i. Both mirror nodeState for the ranking's speed.
	svc, total []int32
	touched    []int32

	eligible map[string][]int32 // by servicePlacement.eligKey
	matches  map[Constraint][]bool
	attrs    map[attrKey][]string
	labels   map[string]labelIDs
	shapes   map[string]*shape // by servicePlacement.shapeKey
}

func newBatch(p *pipeline, infos []NodeInfo) *batch {
	v := newClusterView(infos)
	b := &batch{
		p:        p,
		view:     v,
		nodeOK:   make([]bool, len(v.nodes)),
		svc:      make([]int32, len(v.nodes)),
		total:    make([]int32, len(v.nodes)),
		eligible: make(map[string][]int32),
		labels:   make(map[string]labelIDs),
		shapes:   make(map[string]*shape),
		matches:  make(map[Constraint][]bool),
		attrs:    make(map[attrKey][]string),
	}
	none := &taskInfo{placement: newServicePlacement(Placement{})}
	for i, n := range v.nodes {
		b.nodeOK[i] = p.passes(scopeNode, none, n)
		b.total[i] = int32(n.total)
	}
	return b
}

// startService loads the counts of service svc.
func (b *batch) startService(svc string) {
	for _, x := range b.touched {
		b.svc[x] = 0
	}
	b.touched = b.touched[:0]
	for idx, c := range b.view.byService[svc] {
		b.svc[idx] = c
		b.touched = append(b.touched, idx)
	}
}

// eligibleFor returns, in ascending order, the nodes that pass the node-
// and service-scope filters for t's placement.
func (b *batch) eligibleFor(t *taskInfo) []int32 {
	if e, ok := b.eligible[t.placement.eligKey]; ok {
		return e
	}
	ok := slices.Clone(b.nodeOK)
	for _, f := range b.p.byScope[scopeService] {
		if sf, isSet := f.(setFilter); isSet {
			sf.narrow(t, b, ok)
			continue
		}
		for i, n := range b.view.nodes {
			ok[i] = ok[i] && f.check(t, n)
		}
	}
	var e []int32
	for i := range ok {
		if ok[i] {
			e = append(e, int32(i))
		}
	}
	b.eligible[t.placement.eligKey] = e
	return e
}

// matchesOf returns, per node, whether it satisfies c.
func (b *batch) matchesOf(c Constraint) []bool {
	if m, ok := b.matches[c]; ok {
		return m
	}
	m := make([]bool, len(b.view.nodes))
	if c.key != keyInvalid {
		for i, got := range b.attr(attrKey{c.key, c.label}) {
			m[i] = c.matchesValue(got)
		}
	}
	b.matches[c] = m
	return m
}

type attrKey struct {
	key   constraintKey
	label string
}

// attr returns, per node, the attribute a constraint key reads.
func (b *batch) attr(k attrKey) []string {
	if a, ok := b.attrs[k]; ok {
		return a
	}
	a := make([]string, len(b.view.nodes))
	c := Constraint{key: k.key, label: k.label}
	for i, n := range b.view.nodes {
		a[i] = c.attribute(n.node)
	}
	b.attrs[k] = a
	return a
}

// labelIDs numbers the values of one label: per node a value ID below n,
// 0 for nodes without the label (or with an empty value), the others in
// order of first appearance in node order.
type labelIDs struct {
	ids []int32
	n   int32
}

func (b *batch) labelValues(label string) labelIDs {
	if l, ok := b.labels[label]; ok {
		return l
	}
	vals := make([]int32, len(b.view.nodes))
	ids := map[string]int32{"": 0}
	for i, n := range b.view.nodes {
		v := n.node.GetSpec().GetLabels()[label]
		id, ok := ids[v]
		if !ok {
			id = int32(len(ids))
			ids[v] = id
		}
		vals[i] = id
	}
	l := labelIDs{ids: vals, n: int32(len(ids))}
	b.labels[label] = l
	return l
}

// shapeFor returns the spread tree shape for t's placement.
func (b *batch) shapeFor(t *taskInfo) *shape {
	pl := t.placement
	if s, ok := b.shapes[pl.shapeKey]; ok {
		return s
	}
	values := make([][]int32, len(pl.Preferences))
	nvalues := make([]int32, len(pl.Preferences))
	for k, pr := range pl.Preferences {
		l := b.labelValues(pr.label)
		values[k], nvalues[k] = l.ids, l.n
	}
	s := newShape(b.eligibleFor(t), values, nvalues)
	b.shapes[pl.shapeKey] = s
	return s
}
