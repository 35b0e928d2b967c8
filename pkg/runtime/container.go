package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
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
// state and more than once.
type Container struct {
	rt     *Runtime
	spec   ContainerSpec
	proc   process
	caps   capMask  // bounding set; also effective and permitted for root
	layers []string // diff ids, bottom first
	log    *slog.Logger

	mu    sync.Mutex
	state containerState
	cmd   *exec.Cmd
	pid   int
	done  chan struct{} // closed when the process has been reaped
	exit  ExitStatus
}

// stateFile is persisted so that Sweep in a later worker process can find
// and kill a container's process.
type stateFile struct {
	ID       string `json:"id"`
	Pid      int    `json:"pid,omitempty"`
	PidStart uint64 `json:"pid_start,omitempty"` // /proc/<pid>/stat starttime
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
	dir := r.containerDir(spec.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrContainerExists, spec.ID)
		}
		return nil, fmt.Errorf("runtime: creating container %s: %w", spec.ID, err)
	}
	c := &Container{
		rt:     r,
		spec:   spec,
		proc:   proc,
		caps:   caps,
		layers: img.Layers,
		log:    r.log.With("container_id", spec.ID),
		done:   make(chan struct{}),
	}
	if err := c.prepare(); err != nil {
		if cerr := r.cleanup(ctx, spec.ID, 0, 0); cerr != nil {
			c.log.Warn("cleanup after failed create", "error", cerr)
		}
		return nil, fmt.Errorf("runtime: creating container %s: %w", spec.ID, err)
	}
	c.log.Info("container created", "image", spec.Image, "digest", img.Digest)
	return c, nil
}

func (c *Container) prepare() error {
	if err := c.writeState(stateFile{ID: c.spec.ID}); err != nil {
		return err
	}
	dir := c.rt.containerDir(c.spec.ID)
	for _, d := range []string{"rootfs", "upper", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	lower := make([]string, 0, len(c.layers))
	for i := len(c.layers) - 1; i >= 0; i-- { // overlayfs wants the top layer first
		lower = append(lower, c.rt.layerDir(digestHex(c.layers[i])))
	}
	if err := mountOverlay(lower, filepath.Join(dir, "upper"), filepath.Join(dir, "work"), c.rootfs()); err != nil {
		return err
	}
	return c.rt.cgroups.Create(c.spec.ID, resources{MemoryLimit: c.spec.MemoryLimit, NanoCPUs: c.spec.NanoCPUs})
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
	started := c.cmd != nil
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

// Kill sends sig to the container's process. Signalling an exited or never
// started container is a no-op.
func (c *Container) Kill(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateRunning {
		return nil
	}
	select {
	case <-c.done:
		return nil
	default:
	}
	// os.Process signals through a pidfd, so a recycled pid is never hit.
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("runtime: signalling container %s: %w", c.spec.ID, err)
	}
	return nil
}

// Stop sends SIGTERM, waits up to grace (the spec's StopGracePeriod, or
// 10s, when grace <= 0), then sends SIGKILL, and returns once the process
// is gone or ctx is done. Stopping a container that is not running is a
// no-op.
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
	if err := c.Kill(syscall.SIGTERM); err != nil {
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
	c.log.Info("grace period over, killing container", "grace", grace)
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
	if err := c.rt.cleanup(ctx, c.spec.ID, 0, 0); err != nil {
		return err
	}
	c.mu.Lock()
	c.state = stateRemoved
	c.mu.Unlock()
	c.log.Info("container removed")
	return nil
}

// reap waits for the process and records its exit status. Started by
// Start; it ends when the process exits.
func (c *Container) reap() {
	_ = c.cmd.Wait() // the status is read from ProcessState below
	st := ExitStatus{ExitedAt: time.Now()}
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			st.Signal = ws.Signal()
			st.ExitCode = 128 + int(st.Signal)
		} else {
			st.ExitCode = ws.ExitStatus()
		}
	}
	if stats, err := c.rt.cgroups.Stats(c.spec.ID); err == nil && stats.OOMKills > 0 {
		st.OOMKilled = true
	}
	c.mu.Lock()
	c.exit = st
	c.state = stateExited
	c.mu.Unlock()
	c.log.Info("container exited", "exit_code", st.ExitCode, "signal", int(st.Signal), "oom_killed", st.OOMKilled)
	close(c.done)
}

func (c *Container) writeState(s stateFile) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.rt.containerDir(c.spec.ID), "state.json"), b)
}

func (r *Runtime) readState(id string) (stateFile, error) {
	var s stateFile
	b, err := os.ReadFile(filepath.Join(r.containerDir(id), "state.json"))
	if err != nil {
		return s, err
	}
	err = json.Unmarshal(b, &s)
	return s, err
}
