package runtime

import "github.com/minke-io/minke/internal/shim"

func monotonicNow() int64 { return shim.MonotonicNow() }

// startPhaseNames names the durations of startPhases.Durations.
var startPhaseNames = shim.StartPhaseNames
