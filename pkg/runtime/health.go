package runtime

import (
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HealthConfig is docker's HEALTHCHECK. Test is ["NONE"] (no check),
// ["CMD", arg...] (run arg... directly) or ["CMD-SHELL", command] (run
// `/bin/sh -c command`). Zero durations and retries take docker's defaults:
// DefaultHealthInterval, DefaultHealthTimeout, no start period,
// DefaultHealthRetries.
type HealthConfig struct {
	Test        []string      `json:"test,omitempty"`
	Interval    time.Duration `json:"interval,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
	StartPeriod time.Duration `json:"start_period,omitempty"`
	Retries     int           `json:"retries,omitempty"`
}

// Docker's healthcheck defaults.
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthRetries  = 3
	// healthOutputMax is how much of a probe's output is kept, as docker.
	healthOutputMax = 4096
)

// HealthState is a container's health as docker reports it.
type HealthState int

const (
	// HealthNone: the container has no healthcheck.
	HealthNone HealthState = iota
	// HealthStarting: no probe has succeeded yet, and the failures so far
	// did not reach the retries (or fell in the start period).
	HealthStarting
	// HealthHealthy: the last probe succeeded.
	HealthHealthy
	// HealthUnhealthy: Retries probes in a row failed.
	HealthUnhealthy
)

func (s HealthState) String() string {
	switch s {
	case HealthStarting:
		return "starting"
	case HealthHealthy:
		return "healthy"
	case HealthUnhealthy:
		return "unhealthy"
	default:
		return "none"
	}
}

// HealthStatus is the latest health of a container.
type HealthStatus struct {
	State HealthState
	// FailingStreak counts the failed probes since the last success.
	FailingStreak int
	// Output is the end of the last probe's output (stdout and stderr) or
	// why it could not run.
	Output   string
	ExitCode int
}

// imageHealthcheck converts the image config's HEALTHCHECK.
func imageHealthcheck(h *v1.HealthConfig) *HealthConfig {
	if h == nil || len(h.Test) == 0 {
		return nil
	}
	return &HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
		StartPeriod: h.StartPeriod, Retries: h.Retries}
}

// resolveHealthcheck picks the spec's healthcheck over the image's, as
// docker does: a spec check with an empty Test keeps the image's test but
// takes the spec's timings. It returns nil when there is no check (none
// set, or Test ["NONE"]), with defaults filled in otherwise.
func resolveHealthcheck(spec, img *HealthConfig) (*HealthConfig, error) {
	var h HealthConfig
	switch {
	case spec != nil && len(spec.Test) > 0:
		h = *spec
	case spec != nil && img != nil:
		h = *spec
		h.Test = img.Test
		if h.Interval == 0 {
			h.Interval = img.Interval
		}
		if h.Timeout == 0 {
			h.Timeout = img.Timeout
		}
		if h.StartPeriod == 0 {
			h.StartPeriod = img.StartPeriod
		}
		if h.Retries == 0 {
			h.Retries = img.Retries
		}
	case img != nil:
		h = *img
	default:
		return nil, nil
	}
	if len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil, nil
	}
	switch h.Test[0] {
	case "CMD":
		if len(h.Test) < 2 {
			return nil, fmt.Errorf("%w: Healthcheck.Test %q: CMD needs a command", ErrInvalidSpec, h.Test)
		}
	case "CMD-SHELL":
		if len(h.Test) != 2 || h.Test[1] == "" {
			return nil, fmt.Errorf("%w: Healthcheck.Test %q: CMD-SHELL takes one command string", ErrInvalidSpec, h.Test)
		}
	default:
		return nil, fmt.Errorf("%w: Healthcheck.Test %q: want NONE, CMD or CMD-SHELL first", ErrInvalidSpec, h.Test)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", h.Interval}, {"Timeout", h.Timeout}, {"StartPeriod", h.StartPeriod}} {
		if d.v < 0 {
			return nil, fmt.Errorf("%w: Healthcheck.%s %s is negative", ErrInvalidSpec, d.name, d.v)
		}
		// Docker refuses non-zero durations under 1ms.
		if d.v > 0 && d.v < time.Millisecond {
			return nil, fmt.Errorf("%w: Healthcheck.%s %s is below the minimum 1ms", ErrInvalidSpec, d.name, d.v)
		}
	}
	if h.Retries < 0 {
		return nil, fmt.Errorf("%w: Healthcheck.Retries %d is negative", ErrInvalidSpec, h.Retries)
	}
	if h.Interval == 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout == 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.Retries == 0 {
		h.Retries = DefaultHealthRetries
	}
	return &h, nil
}

// healthArgs is the command line a probe runs.
func (h *HealthConfig) args() []string {
	if h.Test[0] == "CMD-SHELL" {
		return []string{"/bin/sh", "-c", h.Test[1]}
	}
	return h.Test[1:]
}

// healthTracker applies docker's rules to probe results. Not safe for
// concurrent use; the health monitor owns it.
type healthTracker struct {
	cfg     HealthConfig
	started time.Time
	status  HealthStatus
}

func newHealthTracker(cfg HealthConfig, started time.Time) *healthTracker {
	return &healthTracker{cfg: cfg, started: started, status: HealthStatus{State: HealthStarting}}
}

// record takes one probe result (at now) and returns the new status.
// Success makes the container healthy. A failure during the start period
// does not count while the container has never been healthy; otherwise
// Retries failures in a row make it unhealthy.
func (t *healthTracker) record(now time.Time, exitCode int, output string) HealthStatus {
	t.status.ExitCode = exitCode
	t.status.Output = output
	if exitCode == 0 {
		t.status.State = HealthHealthy
		t.status.FailingStreak = 0
		return t.status
	}
	if t.status.State == HealthStarting && now.Sub(t.started) < t.cfg.StartPeriod {
		return t.status
	}
	t.status.FailingStreak++
	if t.status.FailingStreak >= t.cfg.Retries {
		t.status.State = HealthUnhealthy
	}
	return t.status
}
