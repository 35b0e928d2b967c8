package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// healthMonitor runs a container's healthcheck every interval, from the
// worker (as dockerd does), and publishes status changes.
type healthMonitor struct {
	c       *Container
	tracker *healthTracker
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	status  HealthStatus
	changes chan HealthStatus // capacity 1: the latest change not yet taken
}

// Health is the container's latest health; State is HealthNone without a
// healthcheck.
func (c *Container) Health() HealthStatus {
	c.mu.Lock()
	m := c.health
	c.mu.Unlock()
	if m == nil {
		return HealthStatus{State: HealthNone}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// HealthChanges delivers the container's health each time its state
// (starting, healthy, unhealthy) changes; only the latest change is kept
// for a slow reader. It is nil, and never delivers, without a healthcheck.
func (c *Container) HealthChanges() <-chan HealthStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.health == nil {
		return nil
	}
	return c.health.changes
}

// Healthcheck is the resolved healthcheck (spec over image, defaults
// filled in), or nil.
func (c *Container) Healthcheck() *HealthConfig { return c.rec.Healthcheck }

// startHealth starts the monitor of a container that has just started or
// been adopted. c.mu is held.
func (c *Container) startHealth() {
	if c.rec.Healthcheck == nil || c.health != nil {
		return
	}
	started := c.rec.StartedAt
	if started.IsZero() {
		started = time.Now()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &healthMonitor{c: c, tracker: newHealthTracker(*c.rec.Healthcheck, started), cancel: cancel,
		done: make(chan struct{}), status: HealthStatus{State: HealthStarting}, changes: make(chan HealthStatus, 1)}
	c.health = m
	go m.run(ctx)
}

// stopHealth stops the monitor and waits for it.
func (c *Container) stopHealth() {
	c.mu.Lock()
	m := c.health
	c.mu.Unlock()
	if m == nil {
		return
	}
	m.once.Do(m.cancel)
	<-m.done
}

func (m *healthMonitor) run(ctx context.Context) {
	defer close(m.done)
	cfg := m.tracker.cfg
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		res, err := m.c.exec(ctx, cfg.args(), cfg.Timeout)
		if ctx.Err() != nil {
			return
		}
		code, out := res.ExitCode, res.Output
		switch {
		case errors.Is(err, errExecTimeout):
			code, out = -1, fmt.Sprintf("Health check exceeded timeout (%s)", cfg.Timeout)
		case errors.Is(err, ErrInvalidState):
			return // the container exited
		case err != nil:
			code, out = -1, err.Error()
		}
		m.record(time.Now(), code, out)
	}
}

func (m *healthMonitor) record(now time.Time, code int, out string) {
	st := m.tracker.record(now, code, out)
	m.mu.Lock()
	changed := st.State != m.status.State
	m.status = st
	m.mu.Unlock()
	if !changed {
		return
	}
	m.c.log.Info("health changed", "health", st.State.String(), "failing_streak", st.FailingStreak, "exit_code", code)
	select { // keep only the latest
	case <-m.changes:
	default:
	}
	m.changes <- st
}
