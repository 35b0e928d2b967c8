package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ExitStatus is how a container's process ended.
type ExitStatus struct {
	// ExitCode is the process's exit code, or 128+signal when it was
	// killed by a signal (docker's convention).
	ExitCode int
	// Signal is the signal that killed the process, or 0.
	Signal syscall.Signal
	// OOMKilled reports that the kernel's OOM killer killed a process of
	// the container's cgroup.
	OOMKilled bool
	// ExitedAt is when the runtime observed the exit.
	ExitedAt time.Time
}

type containerState int

const (
	stateCreated containerState = iota
	stateRunning
	stateExited
	stateRemoved
)

// Container is one container managed by a Runtime. Its lifecycle is
// Create → Start → Wait/Stop/Kill → Remove; Remove may be called in any
// state and more than once. A Container returned by Runtime.Adopt is
// running or exited already.
type Container struct {
	rt   *Runtime
	spec ContainerSpec
	proc process
	caps capMask // bounding set; also effective and permitted for root
	rec  containerRecord
	// sandbox is resolved by prepare (resolveSandbox) and sent to the init.
	sandbox sandboxConfig
	log     *slog.Logger

	mu       sync.Mutex
	state    containerState
	pid      int    // the init, in the worker's PID namespace
	pidStart uint64 // its start time, for pid-reuse checks
	shimPid  int
	initFD   int           // pidfd of the init, -1 when none
	done     chan struct{} // closed when the exit status is known
	exit     ExitStatus

	health *healthMonitor // nil without a healthcheck

	startPhases startPhases // where Start spent its time (benchmark)
}

// Create pulls the image if it is not present, mounts the container's
// overlayfs root and creates its cgroup with the spec's limits. The process
// is not started. On error nothing is left behind.
func (r *Runtime) Create(ctx context.Context, spec ContainerSpec) (*Container, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	defer r.holdImages()() // no image GC between the pull and the lease
	img, err := r.ensureImage(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	if err := r.leaseImage(spec.ID, img); err != nil {
		return nil, err
	}
	proc, err := resolveProcess(&spec, img.Config)
	if err != nil {
		return nil, err
	}
	caps, err := resolveCaps(spec.CapAdd, spec.CapDrop)
	if err != nil {
		return nil, err
	}
	sig, err := stopSignal(spec.StopSignal, img.Config.StopSignal)
	if err != nil {
		return nil, fmt.Errorf("%w: image %q STOPSIGNAL: %w", ErrInvalidSpec, spec.Image, err)
	}
	hc, err := resolveHealthcheck(spec.Healthcheck, img.Config.Healthcheck)
	if err != nil {
		return nil, err
	}
	dir := r.containerDir(spec.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrContainerExists, spec.ID)
		}
		return nil, fmt.Errorf("runtime: creating container %s: %w", spec.ID, err)
	}
	c := r.newContainer(containerRecord{Spec: spec, Process: proc, Caps: caps, Layers: img.Layers,
		StopSignal: sig, Healthcheck: hc})
	if err := c.prepare(); err != nil {
		if cerr := r.cleanup(ctx, spec.ID, stateFile{}); cerr != nil {
			c.log.Warn("cleanup after failed create", "error", cerr)
		}
		return nil, fmt.Errorf("runtime: creating container %s: %w", spec.ID, err)
	}
	c.log.Info("container created", "image", spec.Image, "digest", img.Digest)
	return c, nil
}

func (r *Runtime) newContainer(rec containerRecord) *Container {
	return &Container{rt: r, spec: rec.Spec, proc: rec.Process, caps: rec.Caps, rec: rec,
		log: r.log.With("container_id", rec.Spec.ID), initFD: -1, done: make(chan struct{})}
}

func (c *Container) prepare() error {
	dir := c.rt.containerDir(c.spec.ID)
	if err := writeJSONFile(filepath.Join(dir, configFileName), c.rec); err != nil {
		return err
	}
	for _, d := range []string{"rootfs", "upper", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	sb, err := c.rt.resolveSandbox(&c.spec, c.caps, dir)
	if err != nil {
		return err
	}
	c.sandbox = sb
	lower := make([]string, 0, len(c.rec.Layers))
	for i := len(c.rec.Layers) - 1; i >= 0; i-- { // overlayfs wants the top layer first
		lower = append(lower, c.rt.layerDir(digestHex(c.rec.Layers[i])))
	}
	if err := mountOverlay(lower, filepath.Join(dir, "upper"), filepath.Join(dir, "work"), c.rootfs()); err != nil {
		return err
	}
	return c.rt.cgroups.Create(c.spec.ID, resourcesOf(&c.spec))
}

// ID is the container's id.
func (c *Container) ID() string { return c.spec.ID }

// Spec returns the spec the container was created with.
func (c *Container) Spec() ContainerSpec { return c.spec }

func (c *Container) rootfs() string {
	return filepath.Join(c.rt.containerDir(c.spec.ID), "rootfs")
}

// Pid is the container process's pid in the worker's PID namespace, or 0
// before Start.
func (c *Container) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid
}

// Wait blocks until the container's process has exited, or ctx is done.
func (c *Container) Wait(ctx context.Context) (ExitStatus, error) {
	c.mu.Lock()
	started := c.state != stateCreated
	c.mu.Unlock()
	if !started {
		return ExitStatus{}, fmt.Errorf("%w: wait on container %s that was not started", ErrInvalidState, c.spec.ID)
	}
	select {
	case <-c.done:
		return c.exit, nil
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

// Exited returns the exit status once the container has exited.
func (c *Container) Exited() (ExitStatus, bool) {
	select {
	case <-c.done:
		return c.exit, true
	default:
		return ExitStatus{}, false
	}
}

// Kill sends sig to the container's init. Signalling an exited or never
// started container is a no-op.
func (c *Container) Kill(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateRunning {
		return nil
	}
	return c.signal(sig)
}

// StopSignal is the signal Stop sends first: the spec's StopSignal, else
// the image's STOPSIGNAL, else SIGTERM.
func (c *Container) StopSignal() syscall.Signal { return c.rec.StopSignal }

// Stop sends the stop signal, waits up to grace (the spec's
// StopGracePeriod, or 10s, when grace <= 0), then sends SIGKILL, and
// returns once the process is gone or ctx is done. Stopping a container
// that is not running is a no-op.
func (c *Container) Stop(ctx context.Context, grace time.Duration) error {
	if grace <= 0 {
		grace = c.spec.StopGracePeriod
	}
	if grace <= 0 {
		grace = defaultStopGrace
	}
	c.mu.Lock()
	running := c.state == stateRunning
	c.mu.Unlock()
	if !running {
		return nil
	}
	if err := c.Kill(c.StopSignal()); err != nil {
		return err
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	c.log.Info("grace period over, killing container", "grace", grace, "stop_signal", c.StopSignal())
	if err := c.Kill(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Remove kills the container's process if it still runs, unmounts its
// rootfs, deletes its cgroup and its directory (including the log). It is
// idempotent.
func (c *Container) Remove(ctx context.Context) error {
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	if state == stateRemoved {
		return nil
	}
	if state == stateRunning {
		_ = c.Kill(syscall.SIGKILL)
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.stopHealth()
	if err := c.rt.cleanup(ctx, c.spec.ID, stateFile{}); err != nil {
		return err
	}
	c.mu.Lock()
	c.state = stateRemoved
	closeFD(c.initFD)
	c.initFD = -1
	c.mu.Unlock()
	c.log.Info("container removed")
	return nil
}

// reap waits until the shim has exited and takes the exit status it
// recorded. Started by Start and Adopt.
func (c *Container) reap(shimExited <-chan struct{}) {
	<-shimExited
	c.finish(c.readExit())
}

// readExit reads the exit status the shim recorded; without one (the shim
// was killed) the init is killed and reported as such.
func (c *Container) readExit() ExitStatus {
	var ex exitFile
	err := readJSONFile(filepath.Join(c.rt.containerDir(c.spec.ID), exitFileName), &ex)
	if err != nil {
		c.log.Warn("shim left no exit status; killing the container", "error", err)
		c.mu.Lock()
		_ = c.signal(syscall.SIGKILL)
		c.mu.Unlock()
		return ExitStatus{ExitCode: 128 + int(syscall.SIGKILL), Signal: syscall.SIGKILL, ExitedAt: time.Now()}
	}
	return ExitStatus{ExitCode: ex.ExitCode, Signal: ex.Signal, ExitedAt: ex.ExitedAt}
}

// finish records the exit status once.
func (c *Container) finish(st ExitStatus) {
	if stats, err := c.rt.cgroups.Stats(c.spec.ID); err == nil && stats.OOMKills > 0 {
		st.OOMKilled = true
	}
	c.mu.Lock()
	c.exit = st
	if c.state == stateRunning {
		c.state = stateExited
	}
	c.mu.Unlock()
	c.stopHealth()
	c.log.Info("container exited", "exit_code", st.ExitCode, "signal", int(st.Signal), "oom_killed", st.OOMKilled)
	close(c.done)
}
