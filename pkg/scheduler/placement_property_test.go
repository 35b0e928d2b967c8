package scheduler

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// decorate gives a node random attributes that constraints and spread
// preferences read.
func decorate(r *rand.Rand, n *minkepb.Node) {
	n.Description.Hostname = fmt.Sprintf("host-%d", r.Intn(4))
	if r.Intn(3) > 0 {
		n.Description.Platform = &minkepb.Platform{
			Os:           []string{"linux", "Linux", "windows"}[r.Intn(3)],
			Architecture: []string{"x86_64", "amd64", "arm64", "aarch64"}[r.Intn(4)],
		}
	}
	if r.Intn(4) == 0 {
		n.Role = minkepb.NodeRole_MANAGER
	}
	n.Spec.Labels = make(map[string]string)
	if v := r.Intn(5); v < 4 {
		n.Spec.Labels["zone"] = []string{"a", "b", "c", "A"}[v]
	}
	if v := r.Intn(4); v < 3 {
		n.Spec.Labels["rack"] = fmt.Sprint(v)
	}
	if r.Intn(2) == 0 {
		n.Spec.Labels["ssd"] = "true"
	}
}

// rule is one service's placement as raw strings, for the oracle.
type rule struct {
	constraints, preferences []string
	max                      uint64
}

type ruleSet map[string]rule

func (rs ruleSet) placement(svc string) Placement {
	rl := rs[svc]
	return placementRules(rl.max, append(append([]string(nil), rl.constraints...), rl.preferences...)...)
}

func (rl rule) allMatch(n *minkepb.Node) bool {
	for _, c := range rl.constraints {
		if !oracleMatch(c, n) {
			return false
		}
	}
	return true
}

var constraintPool = []string{
	"node.labels.zone==a", "node.labels.zone!=b", "node.labels.ssd==true", "node.labels.ssd!=TRUE",
	"node.role==worker", "node.role!=worker", "node.platform.os==linux", "node.platform.arch==amd64",
	"node.platform.arch!=arm64", "node.hostname!=host-1", "node.id!=n01", "node.id==n03",
	"node.labels.rack!=0",
}

// randomRules gives services s0..s(n-1) random constraints, spread
// preferences and caps.
func randomRules(r *rand.Rand, n int) ruleSet {
	rs := make(ruleSet)
	for i := range n {
		var rl rule
		for range r.Intn(3) {
			rl.constraints = append(rl.constraints, constraintPool[r.Intn(len(constraintPool))])
		}
		prefs := []string{"spread=node.labels.zone", "spread=node.labels.rack", "spread=node.labels.ssd"}
		r.Shuffle(len(prefs), func(a, b int) { prefs[a], prefs[b] = prefs[b], prefs[a] })
		rl.preferences = prefs[:r.Intn(3)]
		if r.Intn(3) == 0 {
			rl.max = uint64(r.Intn(3) + 1)
		}
		rs[fmt.Sprintf("s%d", i)] = rl
	}
	return rs
}

// oracleMatch evaluates a constraint string independently of
// ParseConstraint and Constraint.Matches.
func oracleMatch(expr string, n *minkepb.Node) bool {
	key, val, eq := strings.Cut(expr, "==")
	if !eq {
		key, val, _ = strings.Cut(expr, "!=")
	}
	aliases := map[string]string{"x86_64": "amd64", "aarch64": "arm64"}
	arch := func(s string) string {
		if a, ok := aliases[strings.ToLower(s)]; ok {
			return a
		}
		return s
	}
	var got string
	switch {
	case key == "node.id":
		got = n.GetMeta().GetId()
	case key == "node.hostname":
		got = n.GetDescription().GetHostname()
	case key == "node.role":
		got = strings.ToLower(n.GetRole().String())
	case key == "node.platform.os":
		got = n.GetDescription().GetPlatform().GetOs()
	case key == "node.platform.arch":
		got, val = arch(n.GetDescription().GetPlatform().GetArchitecture()), arch(val)
	case strings.HasPrefix(key, "node.labels."):
		got = n.GetSpec().GetLabels()[strings.TrimPrefix(key, "node.labels.")]
	default:
		panic("oracle: unknown key in " + expr)
	}
	return strings.EqualFold(got, val) == eq
}

func svcOf(pending []*minkepb.Task, taskID string) string {
	for _, p := range pending {
		if p.GetMeta().GetId() == taskID {
			return p.GetServiceId()
		}
	}
	return ""
}

type nodeSvc struct{ node, svc string }

// finalServiceCounts counts active tasks per node and service after the
// plan.
func finalServiceCounts(nodes []NodeInfo, pending []*minkepb.Task, plan Plan) map[nodeSvc]int {
	c := make(map[nodeSvc]int)
	for _, n := range nodes {
		for _, t := range n.Tasks {
			if t.DesiredState <= minkepb.TaskState_RUNNING && t.Status.State <= minkepb.TaskState_RUNNING {
				c[nodeSvc{n.Node.Meta.Id, t.ServiceId}]++
			}
		}
	}
	for _, a := range plan.Assignments {
		c[nodeSvc{a.NodeID, svcOf(pending, a.TaskID)}]++
	}
	return c
}

// assigned reports whether the plan put a task of key.svc on key.node.
func assigned(plan Plan, pending []*minkepb.Task, key nodeSvc) bool {
	for _, a := range plan.Assignments {
		if a.NodeID == key.node && svcOf(pending, a.TaskID) == key.svc {
			return true
		}
	}
	return false
}

// TestScheduleSpreadPreferenceProperty: with ample capacity, every group of
// every spread level that received a task ends at most one task above the
// emptiest sibling group (water-filling, the optimum given the tasks already
// running), and so does every node within its innermost group. Groups are
// computed by the test from the eligible nodes that satisfy the
// constraints.
func TestScheduleSpreadPreferenceProperty(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for iter := range 500 {
		var nodes []NodeInfo
		for i, n := 0, r.Intn(12)+1; i < n; i++ {
			var opts []nodeOpt
			if r.Intn(6) == 0 {
				opts = append(opts, []nodeOpt{down, paused, drained}[r.Intn(3)])
			}
			nd := node(fmt.Sprintf("n%02d", i), 1000*cpu, 1000*gib, opts...)
			decorate(r, nd)
			info := NodeInfo{Node: nd}
			for j := range r.Intn(4) {
				info.Tasks = append(info.Tasks, running(task(fmt.Sprintf("e%02d-%d", i, j), fmt.Sprintf("s%d", r.Intn(3)), 100, cpu, gib)))
			}
			nodes = append(nodes, info)
		}
		rules := randomRules(r, 3)
		for svc, rl := range rules {
			rl.max = 0
			rules[svc] = rl
		}
		var pending []*minkepb.Task
		for i, n := 0, r.Intn(40); i < n; i++ {
			pending = append(pending, task(fmt.Sprintf("p%03d", i), fmt.Sprintf("s%d", r.Intn(3)), uint64(i), cpu, gib))
		}
		plan := ScheduleWith(nodes, pending, rules.placement)
		final := finalServiceCounts(nodes, pending, plan)

		for svc, rl := range rules {
			var elig []*minkepb.Node
			for _, n := range nodes {
				if eligible(n.Node) && rl.allMatch(n.Node) {
					elig = append(elig, n.Node)
				}
			}
			for _, p := range pending {
				if _, ok := plan.Unplaced[p.Meta.Id]; ok && p.ServiceId == svc && len(elig) > 0 {
					t.Fatalf("iter %d: %s unplaced with %d eligible nodes: %s", iter, p.Meta.Id, len(elig), plan.Unplaced[p.Meta.Id])
				}
			}
			added := make(map[string]int)
			for _, a := range plan.Assignments {
				if svcOf(pending, a.TaskID) == svc {
					added[a.NodeID]++
				}
			}
			// Check each level: siblings share a path of label values.
			for level := 0; level <= len(rl.preferences); level++ {
				type group struct{ count, added int }
				siblings := make(map[string]map[string]*group) // parent path -> own value -> group
				for _, n := range elig {
					var path []string
					for _, pref := range rl.preferences[:level] {
						path = append(path, n.Spec.Labels[strings.TrimPrefix(pref, "spread=node.labels.")])
					}
					own := n.Meta.Id // the innermost level compares nodes
					if level < len(rl.preferences) {
						own = n.Spec.Labels[strings.TrimPrefix(rl.preferences[level], "spread=node.labels.")]
					}
					parent := strings.Join(path, "\x00")
					if siblings[parent] == nil {
						siblings[parent] = make(map[string]*group)
					}
					g := siblings[parent][own]
					if g == nil {
						g = &group{}
						siblings[parent][own] = g
					}
					g.count += final[nodeSvc{n.Meta.Id, svc}]
					g.added += added[n.Meta.Id]
				}
				for parent, gs := range siblings {
					lo := -1
					for _, g := range gs {
						if lo < 0 || g.count < lo {
							lo = g.count
						}
					}
					for own, g := range gs {
						if g.added > 0 && g.count > lo+1 {
							t.Fatalf("iter %d: %s level %d (prefs %v) under %q: group %q has %d, emptiest sibling %d\n%s",
								iter, svc, level, rl.preferences, parent, own, g.count, lo, dumpGroups(gs))
						}
					}
				}
			}
		}
	}
}

func dumpGroups[G any](gs map[string]*G) string {
	keys := make([]string, 0, len(gs))
	for k := range gs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %q: %+v\n", k, *gs[k])
	}
	return b.String()
}

// referenceSchedule is the definition the fast path must agree with: for
// each task, check every filter on every node and take the smallest node
// under (service tasks in its group at each spread level, service tasks on
// the node, active tasks on the node, node ID), where groups are formed by
// the nodes that pass the node- and service-scope filters.
func referenceSchedule(nodes []NodeInfo, pending []*minkepb.Task, placement func(string) Placement) Plan {
	p := newPipeline()
	view := newClusterView(nodes)
	plan := Plan{Assignments: []Assignment{}, Unplaced: map[string]string{}}
	for _, t := range sortedTasks(pending) {
		svc := t.GetServiceId()
		ti := &taskInfo{task: t, svc: svc, req: taskReservations(t), placement: newServicePlacement(placement(svc))}
		prefs := ti.placement.Preferences
		groupCount := make(map[string]int) // level and label values -> tasks
		pathKey := func(n *nodeState, level int) string {
			k := fmt.Sprint(level)
			for _, pr := range prefs[:level+1] {
				k += "\x00" + n.node.GetSpec().GetLabels()[pr.label]
			}
			return k
		}
		for _, n := range view.nodes {
			if p.passes(scopeNode, ti, n) && p.passes(scopeService, ti, n) {
				for level := range prefs {
					groupCount[pathKey(n, level)] += n.services[svc]
				}
			}
		}
		key := func(n *nodeState) []int {
			var k []int
			for level := range prefs {
				k = append(k, groupCount[pathKey(n, level)])
			}
			return append(k, n.services[svc], n.total)
		}
		var best *nodeState
		for _, n := range view.nodes {
			if !p.passes(scopeNode, ti, n) || !p.passes(scopeService, ti, n) || !p.passes(scopeTask, ti, n) {
				continue
			}
			if best == nil || slices.Compare(key(n), key(best)) < 0 || (slices.Equal(key(n), key(best)) && n.id < best.id) {
				best = n
			}
		}
		if best == nil {
			plan.Unplaced[t.GetMeta().GetId()] = p.explain(ti, view.nodes)
			continue
		}
		best.place(svc, ti.req)
		plan.Assignments = append(plan.Assignments, Assignment{TaskID: t.GetMeta().GetId(), NodeID: best.id})
	}
	return plan
}

// TestScheduleMatchesReference: the cached, heap-based pipeline places
// exactly as the per-task scan over all nodes does, including when tasks of
// one service differ in reservations.
func TestScheduleMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for iter := range 1000 {
		nodes, pending := randomCluster(r)
		for _, p := range pending {
			if r.Intn(4) == 0 { // more tasks per service, so runs and caps matter
				q := task(p.Meta.Id+"x", p.ServiceId, p.Slot, 0, 0)
				pending = append(pending, q)
			}
		}
		rules := randomRules(r, 5)
		got := ScheduleWith(nodes, pending, rules.placement)
		want := referenceSchedule(nodes, pending, rules.placement)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("iter %d: plan differs from the reference\n got %v\nwant %v\nunplaced got %q\nwant %q",
				iter, got.Assignments, want.Assignments, got.Unplaced, want.Unplaced)
		}
	}
}

// TestScheduleManyLabelValues compares with the reference on labels with
// so many values that the spread shape is built with its sparse lookup.
func TestScheduleManyLabelValues(t *testing.T) {
	var nodes []NodeInfo
	for i := range 60 {
		nodes = append(nodes, NodeInfo{Node: node(fmt.Sprintf("n%02d", i), 100*cpu, 100*gib,
			labels("a", fmt.Sprint(i%40), "b", fmt.Sprint(i*7%41)))})
	}
	var pending []*minkepb.Task
	for _, svc := range []string{"s0", "s1"} {
		pending = append(pending, replicas(svc, 150, cpu, gib)...)
	}
	rules := ruleSet{
		"s0": {preferences: []string{"spread=node.labels.a", "spread=node.labels.b"}},
		"s1": {preferences: []string{"spread=node.labels.b", "spread=node.labels.a"}, constraints: []string{"node.labels.a!=3"}},
	}
	got := ScheduleWith(nodes, pending, rules.placement)
	want := referenceSchedule(nodes, pending, rules.placement)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan differs from the reference\n got %v\nwant %v", got.Assignments, want.Assignments)
	}
	if len(got.Assignments) != len(pending) {
		t.Fatalf("placed %d of %d: %v", len(got.Assignments), len(pending), got.Unplaced)
	}
}
