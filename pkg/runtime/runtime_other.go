//go:build !linux

package runtime

import (
	"context"
	"syscall"
	"time"
)

// Start is unsupported outside Linux.
func (c *Container) Start(context.Context) error { return ErrUnsupported }

// Sweep is unsupported outside Linux.
func (r *Runtime) Sweep(context.Context) error { return ErrUnsupported }

// Adopt is unsupported outside Linux.
func (r *Runtime) Adopt(context.Context) ([]*Container, error) { return nil, ErrUnsupported }

func mountOverlay(_ []string, _, _, _ string) error { return ErrUnsupported }

func (r *Runtime) cleanup(context.Context, string, stateFile) error { return ErrUnsupported }

func (c *Container) signal(syscall.Signal) error { return ErrUnsupported }

func closeFD(int) {}

func (c *Container) exec(context.Context, []string, time.Duration) (execResult, error) {
	return execResult{}, ErrUnsupported
}

type shimProc struct{}

func (r *Runtime) closeWarm() {}
