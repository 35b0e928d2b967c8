package scheduler

import (
	"fmt"
	"strings"
)

// pipeline is the placement chain: filters in order, then a ranking.
type pipeline struct {
	filters []filter
	// byScope holds the filters of each scope, in chain order.
	byScope [scopeTask + 1][]filter
}

// newPipeline builds the placement chain. Order matters only for
// explanations: a refused node is counted against the first filter that
// refuses it, so the counts in an explanation add up to the node count.
func newPipeline() *pipeline {
	p := &pipeline{
		filters: []filter{
			// worker: only nodes that run the worker role can start
			// containers; a manager without --worker never gets tasks.
			workerFilter{},
			// ready: only nodes whose status is READY are known to be alive
			// and connected; DOWN and UNKNOWN nodes cannot start anything.
			readyFilter{},
			// availability: the operator's choice in the node spec; PAUSE
			// and DRAIN both refuse new tasks, only ACTIVE accepts them.
			availabilityFilter{},
			// constraint: the service's placement constraints; before the
			// resource filters so a user learns first that a node can never
			// take the task, not that it is full.
			constraintFilter{},
			// max-replicas-per-node: the service's cap on its tasks per
			// node, counting the tasks this batch placed.
			maxReplicasFilter{},
			// cpu: the task's reserved nano CPUs fit in what the node
			// reports minus the reservations of its active tasks.
			cpuFilter{},
			// memory: the same for reserved memory bytes. Together with cpu
			// this means a node is never overcommitted.
			memoryFilter{},
		},
		// rank (see spread.go): nested spread groups with the fewest tasks
		// of the service, then on the node the fewest tasks of the same
		// service, then the fewest active tasks in total, then the smallest
		// node ID.
	}
	for _, f := range p.filters {
		p.byScope[f.scope()] = append(p.byScope[f.scope()], f)
	}
	return p
}

// passes reports whether every filter of scope sc accepts the node.
func (p *pipeline) passes(sc scope, t *taskInfo, n *nodeState) bool {
	for _, f := range p.byScope[sc] {
		if !f.check(t, n) {
			return false
		}
	}
	return true
}

// explain says why no node accepted a task: every node is counted against
// the first filter that refused it.
func (p *pipeline) explain(t *taskInfo, nodes []*nodeState) string {
	if len(nodes) == 0 {
		return "no suitable node (0 nodes in the cluster)"
	}
	refused := make([][]*nodeState, len(p.filters))
	for _, n := range nodes {
		for i, f := range p.filters {
			if !f.check(t, n) {
				refused[i] = append(refused[i], n)
				break
			}
		}
	}
	var parts []string
	for i, f := range p.filters {
		if len(refused[i]) > 0 {
			parts = append(parts, f.explain(t, refused[i]))
		}
	}
	noun := "nodes"
	if len(nodes) == 1 {
		noun = "node"
	}
	return fmt.Sprintf("no suitable node (%d %s: %s)", len(nodes), noun, strings.Join(parts, "; "))
}
