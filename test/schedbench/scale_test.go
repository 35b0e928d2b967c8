//go:build linux

package schedbench

import (
	"context"
	"fmt"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/scheduler"
)

// TestSimulatedScale is the benchmark's path at a size every test run can
// afford: one manager, 50 simulated nodes, 50 services × 10 replicas. All
// 500 tasks must run, each on a node that satisfies its service's
// constraints, no node above a service's cap, and each service spread
// over zones within one task of even where its eligible nodes allow it.
func TestSimulatedScale(t *testing.T) {
	c := startCluster(t, 1)
	l := load{nodes: 50, services: 50, replicas: 10}
	c.startWorkers(l.nodes, time.Minute)
	ready, err := c.readyWorkers()
	if err != nil {
		t.Fatal(err)
	}
	c.labelNodes(ready)
	res := c.run(l, 2*time.Minute)
	t.Logf("500 tasks on 50 simulated nodes: all assigned in %s, all running in %s; manager RSS %.0f MiB",
		res.assigned.Round(time.Millisecond), res.running.Round(time.Millisecond), float64(res.rss[0])/(1<<20))

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	nodes, err := c.leader.cl.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*minkepb.Node{}
	for _, n := range nodes {
		byID[n.GetMeta().GetId()] = n
	}
	for s := range l.services {
		spec := serviceSpec(s, l.replicas)
		tasks, err := c.leader.cl.ListTasks(ctx, spec.GetName())
		if err != nil {
			t.Fatal(err)
		}
		perNode := map[string]int{}
		perZone := map[string]int{}
		for _, tk := range tasks {
			if tk.GetDesiredState() != minkepb.TaskState_RUNNING {
				continue
			}
			n := byID[tk.GetNodeId()]
			if n == nil || tk.GetStatus().GetState() != minkepb.TaskState_RUNNING {
				t.Fatalf("%s slot %d: state %v on node %q", spec.GetName(), tk.GetSlot(), tk.GetStatus().GetState(), tk.GetNodeId())
			}
			for _, expr := range spec.GetTask().GetPlacement().GetConstraints() {
				if cons, err := scheduler.ParseConstraint(expr); err != nil || !cons.Matches(n) {
					t.Errorf("%s slot %d on %s breaks %s (labels %v)", spec.GetName(), tk.GetSlot(), n.GetDescription().GetHostname(), expr, n.GetSpec().GetLabels())
				}
			}
			perNode[n.GetMeta().GetId()]++
			perZone[n.GetSpec().GetLabels()["zone"]]++
		}
		if got := len(tasks); got < l.replicas {
			t.Errorf("%s has %d tasks, want %d", spec.GetName(), got, l.replicas)
		}
		if m := spec.GetTask().GetPlacement().GetMaxReplicasPerNode(); m > 0 {
			for id, n := range perNode {
				if uint64(n) > m {
					t.Errorf("%s has %d tasks on node %s, cap %d", spec.GetName(), n, id, m)
				}
			}
		}
		if s%4 == 2 { // node.role==worker only: every zone is eligible
			lo, hi := l.replicas, 0
			for z := range 5 {
				n := perZone[fmt.Sprintf("z%d", z)]
				lo, hi = min(lo, n), max(hi, n)
			}
			if hi-lo > 1 {
				t.Errorf("%s spread over zones %v: differs by %d", spec.GetName(), perZone, hi-lo)
			}
		}
	}
}
