package scheduler

import (
	"fmt"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// BenchmarkSchedule places 10,000 tasks of 100 services on 1000 nodes per
// iteration and reports the time per placed task (ns/task).
func BenchmarkSchedule(b *testing.B) {
	const nNodes, nTasks, nServices = 1000, 10000, 100
	nodes := make([]NodeInfo, nNodes)
	for i := range nodes {
		nodes[i] = NodeInfo{Node: node(fmt.Sprintf("node-%04d", i), 64*cpu, 256*gib)}
	}
	pending := make([]*minkepb.Task, nTasks)
	for i := range pending {
		pending[i] = task(fmt.Sprintf("task-%05d", i), fmt.Sprintf("svc-%03d", i%nServices), uint64(i/nServices+1), cpu/10, 128*mib)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		plan := Schedule(nodes, pending)
		if len(plan.Assignments) != nTasks {
			b.Fatalf("placed %d of %d", len(plan.Assignments), nTasks)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nTasks), "ns/task")
}

// scaleCluster is the shape of the scale target in issue 5: 5,000 nodes in
// 5 zones × 20 racks, and 1,000 services × 100 replicas, each with one or
// two constraints and one or two spread preferences. With distinct, every
// service also gets a constraint of its own, so no two services share
// eligible nodes or spread shapes (the scheduler's worst case).
func scaleCluster(distinct bool) ([]NodeInfo, []*minkepb.Task, func(string) Placement) {
	const nNodes, nServices, replicas = 5000, 1000, 100
	nodes := make([]NodeInfo, nNodes)
	for i := range nodes {
		n := node(fmt.Sprintf("node-%04d", i), 32*cpu, 64*gib)
		n.Description.Hostname = fmt.Sprintf("host-%04d", i)
		n.Description.Platform = &minkepb.Platform{Os: "linux", Architecture: "x86_64"}
		if i%10 == 9 {
			n.Description.Platform.Architecture = "aarch64"
		}
		if i < 5 {
			n.Role = minkepb.NodeRole_MANAGER
		}
		tier := "core"
		if i%10 == 3 {
			tier = "edge"
		}
		n.Spec.Labels = map[string]string{
			"zone": fmt.Sprintf("z%d", i%5),
			"rack": fmt.Sprintf("z%d-r%02d", i%5, (i/5)%20),
			"tier": tier,
		}
		nodes[i] = NodeInfo{Node: n}
	}
	pending := make([]*minkepb.Task, 0, nServices*replicas)
	placements := make(map[string]Placement, nServices)
	for s := range nServices {
		svc := fmt.Sprintf("svc-%04d", s)
		var cs []string
		switch s % 4 {
		case 0:
			cs = []string{"node.platform.os==linux", "node.labels.tier!=edge"}
		case 1:
			cs = []string{"node.platform.arch==amd64", fmt.Sprintf("node.labels.zone!=z%d", s%5)}
		case 2:
			cs = []string{"node.role==worker"}
		case 3:
			cs = []string{"node.labels.tier==core", "node.platform.os==linux"}
		}
		if distinct {
			cs = append(cs, fmt.Sprintf("node.hostname!=host-%04d", s))
		}
		var pl Placement
		for _, c := range cs {
			pl.Constraints = append(pl.Constraints, mustConstraint(c))
		}
		pl.Preferences = []Preference{mustPreference("spread=node.labels.zone")}
		if s%2 == 0 {
			pl.Preferences = append(pl.Preferences, mustPreference("spread=node.labels.rack"))
		}
		if s%3 == 0 {
			pl.MaxReplicasPerNode = 2
		}
		placements[svc] = pl
		for r := range replicas {
			pending = append(pending, task(fmt.Sprintf("%s-%03d", svc, r), svc, uint64(r+1), cpu/10, 64*mib))
		}
	}
	return nodes, pending, func(svc string) Placement { return placements[svc] }
}

func benchmarkScale(b *testing.B, distinct bool) {
	nodes, pending, placement := scaleCluster(distinct)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		plan := ScheduleWith(nodes, pending, placement)
		if len(plan.Assignments) != len(pending) {
			b.Fatalf("placed %d of %d", len(plan.Assignments), len(pending))
		}
	}
	b.ReportMetric(float64(b.N*len(pending))/b.Elapsed().Seconds(), "placements/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pending)), "ns/task")
}

// BenchmarkScheduleScale is issue 5's pure-scheduler target: 100,000 tasks
// (1,000 services × 100 replicas, with constraints and spread preferences)
// on 5,000 nodes, at least 100,000 placements/s.
func BenchmarkScheduleScale(b *testing.B) { benchmarkScale(b, false) }

// BenchmarkScheduleScaleDistinctConstraints is the same with a constraint
// list of its own per service, defeating the per-batch caches.
func BenchmarkScheduleScaleDistinctConstraints(b *testing.B) { benchmarkScale(b, true) }
