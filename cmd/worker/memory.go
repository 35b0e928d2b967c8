package main

import (
	"os"
	"runtime/debug"
)

// workerGCPercent is the worker's GOGC unless the environment sets one. A
// worker is mostly idle between tasks, and its memory is what every node
// pays for running one: collecting at 50% heap growth rather than Go's
// default 100% keeps the idle heap about a third smaller for a little more
// GC CPU while busy.
const workerGCPercent = 50

// simulatorGCPercent is the GOGC of a --runtime=simulated process unless
// the environment sets one. workerGCPercent's reason (one node's idle
// memory) does not hold for a process that acts as thousands of busy nodes
// in benchmarks, on the cores it shares with the managers it measures: at
// 50 it spent about a fifth of its CPU collecting, and at Go's default
// (100) still about a third with 5,000 nodes (each collection scans every
// session's goroutines and gRPC buffers, about 1 GB; CPU profile of the
// worker in SCHEDBENCH_PROFILE=DIR make bench-scheduler). At 400 it
// collects a quarter as often, for a heap up to about 5 GB: 5,000 real
// workers collect on their own machines.
const simulatorGCPercent = 400

// gcPercentUnlessSet applies percent as GOGC when the environment sets
// none: workerGCPercent at start-up, simulatorGCPercent once the flags say
// the process is a simulator.
func gcPercentUnlessSet(percent int) {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(percent)
	}
}

// releaseStartupMemory wraps ready (agent.WorkerConfig.Ready) so that,
// once the worker has joined, adopted its containers and started its
// network, the heap the start-up left behind (certificates, the join,
// image and container state read from disk) goes back to the OS now
// rather than at the Go scavenger's slow pace.
func releaseStartupMemory(ready func(nodeID string)) func(nodeID string) {
	return func(nodeID string) {
		if ready != nil {
			ready(nodeID)
		}
		go debug.FreeOSMemory()
	}
}
