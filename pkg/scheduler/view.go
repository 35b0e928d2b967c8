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

// clusterView is the mutable copy of the cluster for one batch, with nodes
// sorted by ID so every scan is in a deterministic order.
type clusterView struct {
	nodes []*nodeState
	// byService lists, per service ID, the nodes holding its active tasks
	// when the batch started, so a service's counts are set up without a
	// map lookup per node.
	byService map[string][]nodeCount
}

type nodeCount struct {
	idx   int32
	count int32
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
	v.byService = make(map[string][]nodeCount)
	for i, n := range v.nodes {
		n.idx = int32(i)
		for svc, c := range n.services {
			v.byService[svc] = append(v.byService[svc], nodeCount{idx: n.idx, count: int32(c)})
		}
	}
	return v
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
