//go:build !linux

package runtime

import "context"

// InitArg is os.Args[0] of a worker binary re-executed as a container init.
const InitArg = "minke-init"

// MaybeRunInit does nothing outside Linux.
func MaybeRunInit() {}

// Start is unsupported outside Linux.
func (c *Container) Start(context.Context) error { return ErrUnsupported }

// Sweep is unsupported outside Linux.
func (r *Runtime) Sweep(context.Context) error { return ErrUnsupported }

func mountOverlay(_ []string, _, _, _ string) error { return ErrUnsupported }

func (r *Runtime) cleanup(context.Context, string, int, uint64) error { return ErrUnsupported }
