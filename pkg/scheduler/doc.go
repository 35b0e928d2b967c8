// Package scheduler places pending tasks on nodes.
//
// It is pure: Schedule takes a read-only view of the cluster (nodes with
// their active tasks) and a batch of pending tasks, and returns a Plan. It
// does no I/O, reads no clock, starts no goroutines and never iterates a map
// to decide an order, so the same input always yields the same plan. The
// leader re-checks a plan against the store and commits it in one Raft
// command; the scheduler never writes anything itself.
//
// Placement is a pipeline built in newPipeline: a chain of filters that
// each refuse nodes for one named reason, then a ranking over the survivors.
// When no node survives, the per-filter refusal counts become the
// explanation a user sees on the task.
//
// ScheduleWith adds per-service placement rules in swarm's syntax
// (ParseConstraint, ParsePreference, Placement): constraints and a per-node
// cap are filters, nested spread preferences are part of the ranking
// (spread.go). Filters are evaluated by scope so a batch of 100,000 tasks
// on 5,000 nodes does no per-node work per task (batch.go); the result is
// the same as scanning every node for every task.
package scheduler
