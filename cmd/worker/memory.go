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

// tuneMemory applies workerGCPercent when GOGC is not set.
func tuneMemory() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(workerGCPercent)
	}
}
