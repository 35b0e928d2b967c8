package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// initConfig is sent to the container init over its config pipe.
type initConfig struct {
	Rootfs   string  `json:"rootfs"`
	Hostname string  `json:"hostname"`
	Process  process `json:"process"`
	// Caps is the bounding set, and the effective and permitted sets when
	// the process runs as uid 0.
	Caps capMask `json:"caps"`
	// NetNS is a network namespace to join (setns) instead of the new one.
	NetNS string `json:"netns,omitempty"`
}

// Child file descriptors of the init (after stdin, stdout, stderr).
const (
	initConfigFD = 3 // read: initConfig as JSON, then EOF
	initErrorFD  = 4 // write: a failure message; closed on exec (EOF = success)
)

// Start starts the container's process: the worker binary re-executed as
// the container init in new PID, mount, UTS, IPC and network namespaces
// (and a cgroup namespace the init creates once it is in its cgroup).
// The child is moved into the container's cgroup before it receives its
// configuration, so nothing runs unconfined. The init drops capabilities
// to the spec's set and sets no_new_privs before exec'ing the command.
// Start returns once the container's command has been exec'd; if the init
// fails (for instance `executable "foo" not found in $PATH`) the error
// wraps ErrStart and carries the init's message.
func (c *Container) Start(ctx context.Context) (retErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateCreated || c.cmd != nil {
		return fmt.Errorf("%w: start container %s: already started or removed", ErrInvalidState, c.spec.ID)
	}
	logFile, err := os.OpenFile(c.rt.LogPath(c.spec.ID), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("%w: opening log: %w", ErrStart, err)
	}
	defer logFile.Close() // the child holds its own copy
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	defer cfgW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	defer errR.Close()

	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{InitArg, c.spec.ID},
		Env:        []string{},
		Stdout:     logFile,
		Stderr:     logFile,
		ExtraFiles: []*os.File{cfgR, errW},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS |
				unix.CLONE_NEWIPC | unix.CLONE_NEWNET,
			Setsid: true, // not in the worker's session: no terminal signals
		},
	}
	err = cmd.Start()
	cfgR.Close()
	errW.Close()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	fail := func(err error) error {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	if err := c.rt.cgroups.AddProc(c.spec.ID, cmd.Process.Pid); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrStart, err))
	}
	cfg, err := json.Marshal(initConfig{Rootfs: c.rootfs(), Hostname: hostname(c.spec.ID), Process: c.proc, Caps: c.caps, NetNS: c.spec.NetNSPath})
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrStart, err))
	}
	if _, err := cfgW.Write(cfg); err != nil {
		return fail(fmt.Errorf("%w: sending config to init: %w", ErrStart, err))
	}
	cfgW.Close()

	// The init closes the error pipe by exec'ing (CLOEXEC) or writes why it
	// could not. The reader goroutine ends when the child execs or dies.
	msgc := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(errR, 4096))
		msgc <- string(b)
	}()
	var msg string
	select {
	case msg = <-msgc:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-msgc
		_ = cmd.Wait()
		return fmt.Errorf("%w: %w", ErrStart, ctx.Err())
	}
	if msg != "" {
		return fail(fmt.Errorf("%w: %s", ErrStart, strings.TrimSpace(msg)))
	}

	pid := cmd.Process.Pid
	start, _ := pidStartTime(pid)
	c.cmd, c.pid, c.state = cmd, pid, stateRunning
	if err := c.writeState(stateFile{ID: c.spec.ID, Pid: pid, PidStart: start}); err != nil {
		c.log.Warn("writing state file", "error", err)
	}
	go c.reap()
	c.log.Info("container started", "pid", pid)
	return nil
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
