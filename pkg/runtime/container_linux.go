package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minke-io/minke/internal/shim"
)

// Start starts the container's shim (see shim.go), which starts the init:
// the worker binary re-executed in new PID, mount, UTS, IPC and network
// namespaces (and a cgroup namespace the init creates itself). The init is
// born in the container's cgroup (internal/shim StartInCgroup), so nothing of it runs
// unconfined and no migration has to wait for the kernel. The init drops
// capabilities to the spec's set and sets no_new_privs before exec'ing the
// command (or, with Init, starting it under a reaper). Start returns once
// the command runs; if the init fails (for instance `executable "foo" not
// found in $PATH`) the error wraps ErrStart and carries the init's message.
func (c *Container) Start(ctx context.Context) error {
	begun := monotonicNow()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateCreated || c.shimPid != 0 {
		return fmt.Errorf("%w: start container %s: already started or removed", ErrInvalidState, c.spec.ID)
	}
	dir := c.rt.containerDir(c.spec.ID)
	c.rec.StartedAt = time.Now().UTC()
	if err := writeJSONFile(filepath.Join(dir, configFileName), c.rec); err != nil {
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	shim, err := c.rt.takeShim()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	cmd, cfgW, readyR, shimExited := shim.cmd, shim.cfgW, shim.readyR, shim.exited
	defer cfgW.Close()
	defer readyR.Close()

	cfg := shimConfig{
		ID: c.spec.ID, Dir: dir, Cgroup: c.rt.cgroups.placement(c.spec.ID),
		Init:       initConfig{Rootfs: c.rootfs(), Hostname: hostname(c.spec.ID), Process: c.proc, Caps: uint64(c.caps), Init: c.spec.Init, NetNS: c.spec.NetNSPath, Sandbox: c.sandbox},
		LogMaxSize: c.rt.logMaxSize, LogMaxFiles: c.rt.logMaxFiles,
	}
	b, err := json.Marshal(cfg)
	sent := monotonicNow()
	if err == nil {
		_, err = cfgW.Write(b)
	}
	cfgW.Close()
	if err != nil {
		_ = cmd.Process.Kill()
		<-shimExited
		return fmt.Errorf("%w: sending config to shim: %w", ErrStart, err)
	}
	readyc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(readyR, 64<<10))
		readyc <- b
	}()
	var rb []byte
	select {
	case rb = <-readyc:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-readyc
		<-shimExited
		// The init may have been started: the cgroup catches it on Remove.
		return fmt.Errorf("%w: %w", ErrStart, ctx.Err())
	}
	answered := monotonicNow()
	var ready shimReady
	if err := json.Unmarshal(rb, &ready); err != nil {
		<-shimExited
		return fmt.Errorf("%w: shim died before reporting (see %s): %s", ErrStart, filepath.Join(dir, shimLogName), strings.TrimSpace(string(rb)))
	}
	if ready.Error != "" {
		<-shimExited
		return fmt.Errorf("%w: %s", ErrStart, ready.Error)
	}
	if err := c.attach(ready.State, shimExited); err != nil {
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	c.log.Info("container started", "pid", c.pid, "shim_pid", c.shimPid)
	c.startPhases = ready.Phases
	c.startPhases.Begun, c.startPhases.Sent, c.startPhases.Answered, c.startPhases.Done = begun, sent, answered, monotonicNow()
	return nil
}

// attach records the running container's processes and starts watching
// the shim; exited, if not nil, is closed when the shim (a child of this
// process) has been reaped. c.mu is held.
func (c *Container) attach(st stateFile, exited <-chan struct{}) error {
	// An init that has exited already (a short command) leaves nothing to
	// signal; the shim reports its exit.
	initFD, err := openPidfd(st.Pid, st.PidStart)
	if err != nil {
		initFD = -1
	}
	if exited == nil {
		shimFD, err := openPidfd(st.ShimPid, st.ShimStart)
		if err != nil {
			unix.Close(initFD)
			return fmt.Errorf("container shim %d: %w", st.ShimPid, err)
		}
		ch := make(chan struct{})
		go func() {
			_ = waitPidfdPoller(shimFD)
			close(ch)
		}()
		exited = ch
	}
	c.pid, c.pidStart, c.shimPid, c.initFD = st.Pid, st.PidStart, st.ShimPid, initFD
	c.state = stateRunning
	go c.reap(exited)
	c.startHealth()
	return nil
}

// openPidfd opens a pidfd for pid if it is still the process that started
// at start (clock ticks since boot; 0 skips the check).
func openPidfd(pid int, start uint64) (int, error) {
	if pid <= 0 {
		return -1, fmt.Errorf("no pid recorded")
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("process %d is gone: %w", pid, err)
	}
	if start != 0 {
		// Checked after opening the pidfd: from here on pid cannot be recycled.
		if got, err := shim.PidStartTime(pid); err != nil || got != start {
			unix.Close(fd)
			return -1, fmt.Errorf("process %d is gone (pid reused)", pid)
		}
	}
	return fd, nil
}

// waitPidfdPoller blocks, without holding a thread, until the process
// behind the (non-blocking) pidfd has exited. It takes ownership of fd.
func waitPidfdPoller(fd int) error {
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		if err != nil && !errors.Is(err, unix.EINTR) {
			perr = err
			return true
		}
		return n > 0
	})
	if err != nil {
		return err
	}
	return perr
}

// signal sends sig to the container's init through its pidfd, so that a
// recycled pid is never hit. c.mu is held.
func (c *Container) signal(sig syscall.Signal) error {
	if c.initFD < 0 {
		return nil
	}
	err := unix.PidfdSendSignal(c.initFD, sig, nil, 0)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("runtime: signalling container %s: %w", c.spec.ID, err)
	}
	return nil
}

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// mountOverlay mounts an overlayfs at target; lower is top layer first.
func mountOverlay(lower []string, upper, work, target string) error {
	if len(lower) == 0 {
		return fmt.Errorf("runtime: image has no layers")
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"), upper, work)
	if len(opts) >= unix.Getpagesize() {
		return fmt.Errorf("runtime: overlay options too long (%d layers)", len(lower))
	}
	// nodev: device nodes the container creates in its root (it has
	// CAP_MKNOD) cannot be opened. This is what keeps a container from the
	// host's disks where the cgroup does not filter devices (v2), and a
	// second fence on v1. Layers hold no device nodes (applyLayer refuses
	// them).
	if err := unix.Mount("overlay", target, "overlay", unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("runtime: mounting overlay rootfs: %w", err)
	}
	return nil
}

// unmountAll detaches every mount stacked at target.
func unmountAll(target string) error {
	for range 16 {
		err := unix.Unmount(target, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // not (or no longer) a mount point
		}
		if err != nil {
			return fmt.Errorf("runtime: unmounting %s: %w", target, err)
		}
	}
	return fmt.Errorf("runtime: unmounting %s: still mounted", target)
}
