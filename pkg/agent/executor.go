package agent

import (
	"context"
	"io"
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
	// OpenLog opens a container's log from the beginning; an error that
	// wraps fs.ErrNotExist means it has none.
	OpenLog(id string) (io.ReadCloser, error)
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
