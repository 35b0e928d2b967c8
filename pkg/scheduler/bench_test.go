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
