package main

import (
	"os"
	"runtime/debug"
)

// managerGCPercent is the manager's GOGC unless the environment sets one.
// A manager keeps the whole cluster state in memory and rewrites part of
// it with every commit, so at scale it collects often: at Go's default
// (100), garbage collection took 17-20% of a busy leader's CPU with
// 100,000 tasks, and a leader short of CPU answers its followers late
// and loses its lease. Collecting at 200% heap growth trades memory for
// that CPU: make bench-scheduler with 3 managers ran with no leader change
// and all tasks RUNNING in 48 s (0-6 changes and 62-138 s at 100), for a
// leader heap about a third larger (1.9 GB at 100,000 tasks).
const managerGCPercent = 200

// tuneMemory applies managerGCPercent when GOGC is not set.
func tuneMemory() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(managerGCPercent)
	}
}
