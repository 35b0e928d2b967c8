package scheduler

import (
	"fmt"
	"strings"
)

// pipeline is the placement chain: filters in order, then a ranking.
type pipeline struct {
	filters []filter
}

// newPipeline builds the placement chain. Order matters only for
// explanations: a refused node is counted against the first filter that
// refuses it, so the counts in an explanation add up to the node count.
func newPipeline() *pipeline {
	return &pipeline{
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
			// cpu: the task's reserved nano CPUs fit in what the node
			// reports minus the reservations of its active tasks.
			cpuFilter{},
			// memory: the same for reserved memory bytes. Together with cpu
			// this means a node is never overcommitted.
			memoryFilter{},
		},
		// rank (see better): fewest tasks of the same service on the node,
		// then fewest active tasks in total, then the smallest node ID.
	}
}

// feasible reports whether every filter accepts the node.
func (p *pipeline) feasible(t *taskInfo, n *nodeState) bool {
	for _, f := range p.filters {
		if !f.check(t, n) {
			return false
		}
	}
	return true
}

// better reports whether node i ranks strictly above node j for a task of
// the service whose per-node counts are svcCount.
func (p *pipeline) better(nodes []*nodeState, svcCount []int, i, j int) bool {
	if svcCount[i] != svcCount[j] {
		return svcCount[i] < svcCount[j]
	}
	if nodes[i].total != nodes[j].total {
		return nodes[i].total < nodes[j].total
	}
	return nodes[i].id < nodes[j].id
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
