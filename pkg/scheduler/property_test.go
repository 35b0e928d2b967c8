package scheduler

import (
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// randomCluster builds a cluster whose existing tasks never overcommit a
// node, and a batch of pending tasks over a few services.
func randomCluster(r *rand.Rand) ([]NodeInfo, []*minkepb.Task) {
	cpus := []int64{0, cpu / 2, cpu, 2 * cpu, 4 * cpu, 8 * cpu}
	mems := []int64{0, 512 * mib, gib, 2 * gib, 4 * gib}
	reqCPUs := []int64{0, 0, cpu / 4, cpu / 2, cpu, 3 * cpu / 2}
	reqMems := []int64{0, 0, 64 * mib, 128 * mib, 512 * mib, gib}

	var nodes []NodeInfo
	taskN := 0
	for i, n := 0, r.Intn(12); i < n; i++ {
		var opts []nodeOpt
		switch r.Intn(10) {
		case 0:
			opts = append(opts, down)
		case 1:
			opts = append(opts, paused)
		case 2:
			opts = append(opts, drained)
		}
		nd := node(fmt.Sprintf("n%02d", i), cpus[r.Intn(len(cpus))], mems[r.Intn(len(mems))], opts...)
		decorate(r, nd)
		info := NodeInfo{Node: nd}
		var usedCPU, usedMem int64
		for j, m := 0, r.Intn(6); j < m; j++ {
			c, mem := reqCPUs[r.Intn(len(reqCPUs))], reqMems[r.Intn(len(reqMems))]
			if usedCPU+c > nd.Description.Resources.NanoCpus || usedMem+mem > nd.Description.Resources.MemoryBytes {
				continue
			}
			usedCPU, usedMem = usedCPU+c, usedMem+mem
			taskN++
			info.Tasks = append(info.Tasks, running(task(fmt.Sprintf("e%03d", taskN), fmt.Sprintf("s%d", r.Intn(4)), uint64(j+1), c, mem)))
		}
		if r.Intn(4) == 0 {
			taskN++
			info.Tasks = append(info.Tasks, withState(task(fmt.Sprintf("e%03d", taskN), "s0", 1, 8*cpu, 8*gib),
				minkepb.TaskState_SHUTDOWN, minkepb.TaskState_COMPLETE))
		}
		nodes = append(nodes, info)
	}
	var pending []*minkepb.Task
	for i, n := 0, r.Intn(30); i < n; i++ {
		pending = append(pending, task(fmt.Sprintf("p%03d", i), fmt.Sprintf("s%d", r.Intn(5)), uint64(r.Intn(10)+1),
			reqCPUs[r.Intn(len(reqCPUs))], reqMems[r.Intn(len(reqMems))]))
	}
	return nodes, pending
}

// shuffled returns copies of the inputs in a random order.
func shuffled(r *rand.Rand, nodes []NodeInfo, pending []*minkepb.Task) ([]NodeInfo, []*minkepb.Task) {
	ns := make([]NodeInfo, len(nodes))
	for i, n := range nodes {
		ns[i] = NodeInfo{Node: n.Node, Tasks: append([]*minkepb.Task(nil), n.Tasks...)}
		r.Shuffle(len(ns[i].Tasks), func(a, b int) { ns[i].Tasks[a], ns[i].Tasks[b] = ns[i].Tasks[b], ns[i].Tasks[a] })
	}
	r.Shuffle(len(ns), func(a, b int) { ns[a], ns[b] = ns[b], ns[a] })
	ps := append([]*minkepb.Task(nil), pending...)
	r.Shuffle(len(ps), func(a, b int) { ps[a], ps[b] = ps[b], ps[a] })
	return ns, ps
}

// usage is an independent oracle: it sums reservations from the protos
// without going through the scheduler's own view.
type usage struct{ cpu, mem int64 }

func finalUsage(nodes []NodeInfo, pending []*minkepb.Task, plan Plan) map[string]*usage {
	byID := make(map[string]*minkepb.Task)
	for _, t := range pending {
		byID[t.Meta.Id] = t
	}
	u := make(map[string]*usage)
	for _, n := range nodes {
		nu := &usage{}
		for _, t := range n.Tasks {
			if t.DesiredState > minkepb.TaskState_RUNNING || t.Status.State > minkepb.TaskState_RUNNING {
				continue
			}
			nu.cpu += t.Spec.Resources.Reservations.NanoCpus
			nu.mem += t.Spec.Resources.Reservations.MemoryBytes
		}
		u[n.Node.Meta.Id] = nu
	}
	for _, a := range plan.Assignments {
		t := byID[a.TaskID]
		u[a.NodeID].cpu += t.Spec.Resources.Reservations.NanoCpus
		u[a.NodeID].mem += t.Spec.Resources.Reservations.MemoryBytes
	}
	return u
}

func eligible(n *minkepb.Node) bool {
	return n.Status.State == minkepb.NodeStatus_READY && n.Spec.Availability == minkepb.NodeSpec_ACTIVE
}

func TestScheduleProperties(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for iter := range 1000 {
		nodes, pending := randomCluster(r)
		rules := randomRules(r, 5)
		placement := rules.placement
		if iter%5 == 0 {
			placement = nil
		}
		plan := ScheduleWith(nodes, pending, placement)

		nodeByID := make(map[string]*minkepb.Node)
		for _, n := range nodes {
			nodeByID[n.Node.Meta.Id] = n.Node
		}
		seen := make(map[string]int)
		for _, a := range plan.Assignments {
			seen[a.TaskID]++
			n, ok := nodeByID[a.NodeID]
			if !ok {
				t.Fatalf("iter %d: task %s assigned to unknown node %s", iter, a.TaskID, a.NodeID)
			}
			if !eligible(n) {
				t.Fatalf("iter %d: task %s assigned to ineligible node %v", iter, a.TaskID, n)
			}
			if placement != nil {
				svc := svcOf(pending, a.TaskID)
				for _, c := range rules[svc].constraints {
					if !oracleMatch(c, n) {
						t.Fatalf("iter %d: task %s of %s on node %s breaks constraint %s (node %v)", iter, a.TaskID, svc, a.NodeID, c, n)
					}
				}
			}
		}
		perNode := finalServiceCounts(nodes, pending, plan)
		if placement != nil {
			for key, c := range perNode {
				if m := rules[key.svc].max; m > 0 && c > int(m) && assigned(plan, pending, key) {
					t.Fatalf("iter %d: node %s has %d tasks of %s, max %d", iter, key.node, c, key.svc, m)
				}
			}
		}
		for id := range plan.Unplaced {
			seen[id]++
		}
		for _, p := range pending {
			if seen[p.Meta.Id] != 1 {
				t.Fatalf("iter %d: task %s appears %d times in the plan", iter, p.Meta.Id, seen[p.Meta.Id])
			}
		}

		u := finalUsage(nodes, pending, plan)
		for id, nu := range u {
			res := nodeByID[id].Description.Resources
			if nu.cpu > res.NanoCpus || nu.mem > res.MemoryBytes {
				t.Fatalf("iter %d: node %s overcommitted: cpu %d/%d mem %d/%d", iter, id, nu.cpu, res.NanoCpus, nu.mem, res.MemoryBytes)
			}
		}
		// Free capacity only shrinks during a batch, so a task left unplaced
		// must not fit on any node even at the end.
		for _, p := range pending {
			if _, ok := plan.Unplaced[p.Meta.Id]; !ok {
				continue
			}
			req := p.Spec.Resources.Reservations
			for id, n := range nodeByID {
				res := n.Description.Resources
				if placement != nil {
					rl := rules[p.ServiceId]
					if !rl.allMatch(n) || (rl.max > 0 && perNode[nodeSvc{id, p.ServiceId}] >= int(rl.max)) {
						continue
					}
				}
				if eligible(n) && u[id].cpu+req.NanoCpus <= res.NanoCpus && u[id].mem+req.MemoryBytes <= res.MemoryBytes {
					t.Fatalf("iter %d: task %s unplaced (%q) but fits node %s", iter, p.Meta.Id, plan.Unplaced[p.Meta.Id], id)
				}
			}
		}

		for range 3 {
			ns, ps := shuffled(r, nodes, pending)
			if again := ScheduleWith(ns, ps, placement); !reflect.DeepEqual(again, plan) {
				t.Fatalf("iter %d: plan differs for shuffled input:\n got %v\nwant %v", iter, again, plan)
			}
		}
	}
}

// TestScheduleSpreadProperty: on nodes that are eligible, empty and large
// enough, every service ends up within one task of even across them, and
// ineligible nodes get nothing.
func TestScheduleSpreadProperty(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for iter := range 300 {
		var nodes []NodeInfo
		var ids []string
		for i, n := 0, r.Intn(10)+1; i < n; i++ {
			var opts []nodeOpt
			if r.Intn(5) == 0 {
				opts = append(opts, []nodeOpt{down, paused, drained}[r.Intn(3)])
			}
			nd := node(fmt.Sprintf("n%02d", i), 1000*cpu, 1000*gib, opts...)
			nodes = append(nodes, NodeInfo{Node: nd})
			if eligible(nd) {
				ids = append(ids, nd.Meta.Id)
			}
		}
		var pending []*minkepb.Task
		for i, n := 0, r.Intn(60); i < n; i++ {
			pending = append(pending, task(fmt.Sprintf("p%03d", i), fmt.Sprintf("s%d", r.Intn(4)), uint64(i), cpu, gib))
		}
		plan := Schedule(nodes, pending)

		svcOf := make(map[string]string)
		for _, p := range pending {
			svcOf[p.Meta.Id] = p.ServiceId
		}
		perSvc := make(map[string]map[string]int)
		for _, a := range plan.Assignments {
			svc := svcOf[a.TaskID]
			if perSvc[svc] == nil {
				perSvc[svc] = make(map[string]int)
			}
			perSvc[svc][a.NodeID]++
		}
		if len(ids) == 0 {
			if len(plan.Assignments) != 0 {
				t.Fatalf("iter %d: assignments without eligible nodes: %v", iter, plan.Assignments)
			}
			continue
		}
		if len(plan.Unplaced) != 0 {
			t.Fatalf("iter %d: unplaced with ample resources: %v", iter, plan.Unplaced)
		}
		for svc, c := range perSvc {
			lo, hi := c[ids[0]], c[ids[0]]
			for _, id := range ids {
				lo, hi = min(lo, c[id]), max(hi, c[id])
			}
			total := 0
			for _, v := range c {
				total += v
			}
			sum := 0
			for _, id := range ids {
				sum += c[id]
			}
			if sum != total {
				t.Fatalf("iter %d: service %s placed on ineligible nodes: %v", iter, svc, c)
			}
			if hi-lo > 1 {
				t.Fatalf("iter %d: service %s spread %v over %v differs by %d", iter, svc, c, ids, hi-lo)
			}
		}
	}
}
