package agent

import (
	"context"
	"syscall"
	"time"

	"github.com/minke-io/minke/pkg/runtime"
)

// Executor is what the agent needs of a container runtime: exactly the
// calls the runner and the log publisher make. The real one is
// *runtime.Runtime (through RuntimeExecutor); the simulated one
// (simulated.go) exists only for benchmarks and scale tests.
type Executor interface {
	// Create prepares a container (image, rootfs, cgroup) without starting
	// it.
	Create(ctx context.Context, spec runtime.ContainerSpec) (Container, error)
	// ReadLogs calls fn with a container's log entries (see
	// runtime.Runtime.ReadLogs); an error that wraps fs.ErrNotExist means
	// it has none.
	ReadLogs(ctx context.Context, id string, opts runtime.LogOptions, fn func(runtime.LogEntry) error) error
}

// Container is one created container, with the lifecycle of
// *runtime.Container: Start, then Wait/Stop/Kill, then Remove (which may be
// called in any state and more than once).
type Container interface {
	Start(ctx context.Context) error
	// Pid is the container's init process as the host sees it, or 0.
	Pid() int
	// Wait blocks until the container's process has exited.
	Wait(ctx context.Context) (runtime.ExitStatus, error)
	// Stop sends the stop signal and SIGKILL after the grace period.
	Stop(ctx context.Context, grace time.Duration) error
	Kill(sig syscall.Signal) error
	Remove(ctx context.Context) error
	// Exited reports the exit status once the process has exited (an
	// adopted container may have exited while no worker watched).
	Exited() (runtime.ExitStatus, bool)
	// Health is the healthcheck status now; HealthChanges delivers changes
	// (nil: the container has no healthcheck).
	Health() runtime.HealthStatus
	HealthChanges() <-chan runtime.HealthStatus
}

var (
	_ Executor  = RuntimeExecutor{}
	_ Container = (*runtime.Container)(nil)
)

// RuntimeExecutor runs containers with the real runtime. It only adapts
// Create's result type: Go has no covariant results, so *runtime.Runtime,
// whose Create returns the concrete *runtime.Container, cannot be an
// Executor by itself.
type RuntimeExecutor struct{ *runtime.Runtime }

// Create creates a real container.
func (r RuntimeExecutor) Create(ctx context.Context, spec runtime.ContainerSpec) (Container, error) {
	c, err := r.Runtime.Create(ctx, spec)
	if err != nil {
		return nil, err // never a typed nil in the interface
	}
	return c, nil
}
