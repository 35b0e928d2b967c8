package orchestrator

import (
	"sort"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// rebalance moves tasks of a replicated service from its most loaded
// eligible nodes, start-first, so that the scheduler places them on the
// least loaded ones; the old task is retired only once its replacement is
// Ready, so the service never runs fewer tasks than before. It moves up to
// the update config's parallelism at a time and reports whether it moved
// any. It stops when the eligible nodes' counts differ by at most one, or
// after as many moves as the service has replicas (constraints, spread
// preferences or reservations may make a perfect spread impossible).
func (u *Updater) rebalance(tx *raftstore.WriteTx, svc *minkepb.Service, tasks []*minkepb.Task, cfg *minkepb.UpdateConfig,
	now time.Time, images map[string]string) (bool, error) {
	r, ok := svc.GetSpec().GetMode().(*minkepb.ServiceSpec_Replicated)
	if !ok {
		return false, nil
	}
	start := svc.GetUpdateStatus().GetStartedAt().AsTime()
	var moves uint64
	for _, t := range tasks {
		if !t.GetMeta().GetCreatedAt().AsTime().Before(start) {
			moves++
		}
	}
	if moves >= r.Replicated.GetReplicas() {
		return false, nil
	}
	constraints := placementOf(svc.GetSpec().GetTask().GetPlacement()).Constraints
	count := map[string]int{}
	for _, n := range tx.Nodes() {
		if rules := globalRules(n, constraints); rules.place {
			count[n.GetMeta().GetId()] = 0
		}
	}
	onNode := map[string][]slotView{}
	for _, v := range slots(svc, tasks, slotFiller(tx, svc)) {
		if len(v.alive) != 1 {
			continue
		}
		id := v.alive[0].GetNodeId()
		if _, ok := count[id]; ok {
			count[id]++
			onNode[id] = append(onNode[id], v)
		}
	}
	nodes := make([]string, 0, len(count))
	for id := range count {
		nodes = append(nodes, id)
	}
	// Most loaded first; ties by ID so the plan is deterministic.
	sort.Slice(nodes, func(i, j int) bool {
		if count[nodes[i]] != count[nodes[j]] {
			return count[nodes[i]] > count[nodes[j]]
		}
		return nodes[i] < nodes[j]
	})
	if len(nodes) < 2 || count[nodes[0]]-count[nodes[len(nodes)-1]] <= 1 {
		return false, nil
	}
	seats := int(cfg.GetParallelism())
	if seats == 0 {
		seats = len(nodes)
	}
	// Move from the most loaded nodes while they hold at least two more
	// than the least loaded, counting the moves already planned.
	lo, hi := len(nodes)-1, 0
	moved := 0
	for moved < seats && hi < lo && count[nodes[hi]]-count[nodes[lo]] > 1 {
		from := nodes[hi]
		v := onNode[from][len(onNode[from])-1]
		onNode[from] = onNode[from][:len(onNode[from])-1]
		if err := createTask(tx, slotTask(svc, v.ref, now, images)); err != nil {
			return false, err
		}
		count[from]--
		count[nodes[lo]]++
		moved++
		sort.Slice(nodes, func(i, j int) bool {
			if count[nodes[i]] != count[nodes[j]] {
				return count[nodes[i]] > count[nodes[j]]
			}
			return nodes[i] < nodes[j]
		})
	}
	return moved > 0, nil
}
