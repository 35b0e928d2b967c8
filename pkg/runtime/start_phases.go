package runtime

import (
	"time"

	"golang.org/x/sys/unix"
)

// startPhases are CLOCK_MONOTONIC readings (ns) taken along one Start, in
// the worker and in the shim (the clock is the same for every process), so
// that the benchmark can tell where a start spends its time.
type startPhases struct {
	Sent     int64 `json:"sent,omitempty"`     // worker: config written to the shim
	Received int64 `json:"received,omitempty"` // shim: config read
	Forked   int64 `json:"forked,omitempty"`   // shim: init forked into its cgroup and namespaces
	Execd    int64 `json:"execd,omitempty"`    // shim: init exec'd the command (its error pipe hit EOF)
	Answered int64 `json:"answered,omitempty"` // worker: shim's answer read
}

func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// durations returns the phases as durations: hand-off to the shim, fork
// of the init, the init's setup until exec, and the answer's way back.
func (p startPhases) durations() [4]time.Duration {
	d := func(a, b int64) time.Duration {
		if a == 0 || b == 0 {
			return 0
		}
		return time.Duration(b - a)
	}
	return [4]time.Duration{d(p.Sent, p.Received), d(p.Received, p.Forked), d(p.Forked, p.Execd), d(p.Execd, p.Answered)}
}

// helperEnv is the environment of the shim, init and exec helper
// processes (never the container's: the init execs the command with the
// spec's). One P: none of them runs anything in parallel, and the Go
// runtime then skips reading the cgroup CPU limit at start and starts
// fewer threads, which matters for the init, forked on every start.
func helperEnv() []string { return []string{"GOMAXPROCS=1"} }
