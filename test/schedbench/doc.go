// Package schedbench measures scheduling at issue 5's scale and checks a
// small version of it in every test run.
//
// The end-to-end figures run real `manager` processes built from this tree
// (one, or three on 127.0.0.1-3) without the worker role, and one real
// `worker --runtime=simulated --simulate-nodes N` process on 127.0.0.1 that
// acts as N nodes: each joins with the worker token, gets its own identity
// and holds its own Dispatcher session, and reports every task ACCEPTED →
// PREPARING → STARTING → RUNNING through the real agent runner, without
// starting processes. Simulated nodes do not gossip; they become READY
// through their sessions (see pkg/dispatcher liveness).
//
// The load is the one pkg/scheduler's BenchmarkScheduleScale places in
// memory: 1,000 services × 100 replicas, each with one or two constraints
// (node.labels, node.platform.os, node.role, node.hostname) and one or two
// nested spread preferences (zone, then rack) over 5,000 nodes labelled in
// 5 zones × 20 racks. The clock starts before the first CreateService and
// the counts come from ListServices on the leader every 200 ms (its
// `assigned` and `running` counts), so each figure is late by at most
// 200 ms and includes that polling's load (ListServices answers these
// replicated services from the store's per-service counts, without
// reading their tasks).
// Under the figures it prints what the managers did meanwhile, from their
// --metrics-addr: session messages and wakes, status calls and updates and
// the commands that committed them, assignment commands, and leader
// changes.
//
//	make bench-scheduler
//
// SCHEDBENCH_PROFILE=DIR also writes a CPU profile of every process,
// taken from the first create on, into DIR (see profile_test.go).
//
// TestSimulatedScale runs the same path with 50 nodes and 500 tasks and
// checks every placement against its constraints. Every process and
// directory belongs to the test and is removed when it ends; all traffic
// stays on 127.0.0.0/8.
package schedbench
