package scheduler

import (
	"cmp"
	"slices"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// resources is a CPU and memory amount: a reservation or a capacity.
type resources struct {
	nanoCPUs    int64
	memoryBytes int64
}

// nodeState is one node as the scheduler sees it during a batch. The
// reserved amounts and counts change as the batch places tasks.
type nodeState struct {
	id string
	// idx is the node's position in clusterView.nodes.
	idx      int32
	node     *minkepb.Node
	capacity resources
	reserved resources
	// total counts active tasks; services counts them per service ID.
	total    int
	services map[string]int
}

func (n *nodeState) free() resources {
	return resources{
		nanoCPUs:    n.capacity.nanoCPUs - n.reserved.nanoCPUs,
		memoryBytes: n.capacity.memoryBytes - n.reserved.memoryBytes,
	}
}

// place records a task of service svc reserving req on the node.
func (n *nodeState) place(svc string, req resources) {
	n.reserved.nanoCPUs += req.nanoCPUs
	n.reserved.memoryBytes += req.memoryBytes
	n.total++
	n.services[svc]++
}

// unplace undoes place.
func (n *nodeState) unplace(svc string, req resources) {
	n.reserved.nanoCPUs -= req.nanoCPUs
	n.reserved.memoryBytes -= req.memoryBytes
	n.total--
	if n.services[svc]--; n.services[svc] <= 0 {
		delete(n.services, svc)
	}
}

// clusterView is the mutable copy of the cluster a batch places on, with
// nodes sorted by ID so every scan is in a deterministic order.
type clusterView struct {
	nodes []*nodeState
	// byID is each node's index in nodes.
	byID map[string]int32
	// byService holds, per service ID, the nodes holding its active tasks
	// and how many, by index, so a service's counts are set up without a
	// map lookup per node. It follows every placement.
	byService map[string]map[int32]int32
}

func newClusterView(infos []NodeInfo) *clusterView {
	v := &clusterView{nodes: make([]*nodeState, 0, len(infos))}
	for _, info := range infos {
		if info.Node == nil {
			continue
		}
		res := info.Node.GetDescription().GetResources()
		n := &nodeState{
			id:       info.Node.GetMeta().GetId(),
			node:     info.Node,
			capacity: resources{nanoCPUs: res.GetNanoCpus(), memoryBytes: res.GetMemoryBytes()},
			services: make(map[string]int),
		}
		for _, t := range info.Tasks {
			if !isActive(t) {
				continue
			}
			n.place(t.GetServiceId(), taskReservations(t))
		}
		v.nodes = append(v.nodes, n)
	}
	slices.SortStableFunc(v.nodes, func(a, b *nodeState) int { return cmp.Compare(a.id, b.id) })
	v.byService = make(map[string]map[int32]int32)
	v.byID = make(map[string]int32, len(v.nodes))
	for i, n := range v.nodes {
		n.idx = int32(i)
		v.byID[n.id] = n.idx
		for svc, c := range n.services {
			v.counts(svc)[n.idx] = int32(c)
		}
	}
	return v
}

// counts is byService's entry for svc, created empty.
func (v *clusterView) counts(svc string) map[int32]int32 {
	m := v.byService[svc]
	if m == nil {
		m = map[int32]int32{}
		v.byService[svc] = m
	}
	return m
}

// placed records in byService that node x took a task of svc (the node's
// own state is updated by place).
func (v *clusterView) placed(x int32, svc string) { v.counts(svc)[x]++ }

// unplaced undoes placed.
func (v *clusterView) unplaced(x int32, svc string) {
	m := v.byService[svc]
	if m[x]--; m[x] <= 0 {
		delete(m, x)
		if len(m) == 0 {
			delete(v.byService, svc)
		}
	}
}

// isActive reports whether a task still holds its node's resources: it is
// meant to run and has not reached a terminal state.
func isActive(t *minkepb.Task) bool {
	if t == nil {
		return false
	}
	return t.GetDesiredState() <= minkepb.TaskState_RUNNING &&
		t.GetStatus().GetState() <= minkepb.TaskState_RUNNING
}

// taskReservations returns what a task reserves; negative values (invalid
// specs that validation should have refused) count as zero.
func taskReservations(t *minkepb.Task) resources {
	r := t.GetSpec().GetResources().GetReservations()
	return resources{nanoCPUs: max(r.GetNanoCpus(), 0), memoryBytes: max(r.GetMemoryBytes(), 0)}
}
