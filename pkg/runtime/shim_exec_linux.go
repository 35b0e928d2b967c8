package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minke-io/minke/internal/shim"
)

// exec runs args inside the running container: in its mount, PID, network,
// UTS, IPC and cgroup namespaces and its cgroup, with the container's
// environment, working directory, user, capabilities and no_new_privs. It
// returns when the command has exited, or kills it after timeout.
//
// Go cannot setns into a mount namespace from a multi-threaded process, nor
// into a PID namespace at all for itself (only for children), so the
// command runs under a helper: this process joins the PID namespace on a
// dedicated thread (which is then thrown away) and forks the helper from
// it; the helper, on a thread with its own fs_struct, joins the other
// namespaces, drops privileges and execs the command.
func (c *Container) exec(ctx context.Context, args []string, timeout time.Duration) (execResult, error) {
	c.mu.Lock()
	pid, pidStart, running := c.pid, c.pidStart, c.state == stateRunning
	c.mu.Unlock()
	if !running {
		return execResult{}, fmt.Errorf("%w: exec in container %s: not running", ErrInvalidState, c.spec.ID)
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return execResult{}, err
	}
	defer cfgW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return execResult{}, err
	}
	defer errR.Close()
	fd, err := openPidfd(pid, pidStart)
	if err != nil {
		cfgR.Close()
		errR.Close()
		errW.Close()
		return execResult{}, fmt.Errorf("%w: exec in container %s: %w", ErrInvalidState, c.spec.ID, err)
	}
	pidFile := os.NewFile(uintptr(fd), "pidfd")
	defer pidFile.Close()
	out := &tailBuffer{max: healthOutputMax}
	cmd := &exec.Cmd{
		Path:       c.rt.exe,
		Args:       []string{shim.ExecArg, c.spec.ID},
		Env:        shim.HelperEnv(),
		Stdout:     out,
		Stderr:     out,
		ExtraFiles: []*os.File{cfgR, errW, pidFile},
		// No Pdeathsig: the forking thread ends right after the fork.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine, and with it
		// the changed PID namespace for children.
		goruntime.LockOSThread()
		if err := unix.Setns(fd, unix.CLONE_NEWPID); err != nil {
			started <- fmt.Errorf("joining PID namespace: %w", err)
			return
		}
		started <- cmd.Start()
	}()
	err = <-started
	cfgR.Close()
	errW.Close()
	if err != nil {
		return execResult{}, fmt.Errorf("runtime: exec in container %s: %w", c.spec.ID, err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	kill := func() { _ = cmd.Process.Kill(); <-waited }
	if err := c.rt.cgroups.AddProc(c.spec.ID, cmd.Process.Pid); err != nil {
		kill()
		return execResult{}, fmt.Errorf("runtime: exec in container %s: %w", c.spec.ID, err)
	}
	p := c.proc
	p.Args = args
	sb, err := c.execSandbox()
	if err != nil {
		kill()
		return execResult{}, fmt.Errorf("runtime: exec in container %s: %w", c.spec.ID, err)
	}
	b, _ := json.Marshal(shim.ExecConfig{Process: p, Caps: uint64(c.caps), Sandbox: sb})
	if _, err := cfgW.Write(b); err != nil {
		kill()
		return execResult{}, fmt.Errorf("runtime: exec in container %s: sending config: %w", c.spec.ID, err)
	}
	cfgW.Close()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-waited:
	case <-timer.C:
		kill()
		return execResult{ExitCode: -1, Output: out.String()}, errExecTimeout
	case <-ctx.Done():
		kill()
		return execResult{}, ctx.Err()
	}
	msg, _ := io.ReadAll(io.LimitReader(errR, 4096))
	code := cmd.ProcessState.ExitCode()
	if len(msg) > 0 {
		return execResult{ExitCode: code, Output: strings.TrimSpace(string(msg))}, nil
	}
	return execResult{ExitCode: code, Output: out.String()}, nil
}

// tailBuffer keeps the last max bytes written to it. os/exec calls Write
// from one goroutine at a time when Stdout and Stderr are the same writer.
type tailBuffer struct {
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return t.buf.String() }
