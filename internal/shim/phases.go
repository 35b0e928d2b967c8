package shim

import (
	"time"

	"golang.org/x/sys/unix"
)

// StartPhases are CLOCK_MONOTONIC readings (ns) taken along one start, in
// the worker and in the shim (the clock is the same for every process), so
// that the benchmark can tell where a start spends its time.
type StartPhases struct {
	Begun    int64 `json:"-"`                  // worker: Start called
	Sent     int64 `json:"sent,omitempty"`     // worker: config written to the shim
	Received int64 `json:"received,omitempty"` // shim: config read
	Forked   int64 `json:"forked,omitempty"`   // shim: init forked into its cgroup and namespaces
	Execd    int64 `json:"execd,omitempty"`    // shim: init exec'd the command (its error pipe hit EOF)
	Answered int64 `json:"answered,omitempty"` // worker: shim's answer read
	Done     int64 `json:"-"`                  // worker: Start returns
}

// MonotonicNow reads CLOCK_MONOTONIC, as StartPhases records it.
func MonotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// StartPhaseNames names the durations of StartPhases.Durations.
var StartPhaseNames = []string{"prepare", "to shim", "fork init", "init until exec", "answer", "record"}

// Durations returns the phases as durations: the worker's preparation
// (state file, shim, config), hand-off to the shim, fork of the init, the
// init's setup until exec, the answer's way back, and the worker's
// recording of the running container.
func (p StartPhases) Durations() [6]time.Duration {
	d := func(a, b int64) time.Duration {
		if a == 0 || b == 0 {
			return 0
		}
		return time.Duration(b - a)
	}
	return [6]time.Duration{d(p.Begun, p.Sent), d(p.Sent, p.Received), d(p.Received, p.Forked), d(p.Forked, p.Execd),
		d(p.Execd, p.Answered), d(p.Answered, p.Done)}
}
