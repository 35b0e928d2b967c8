package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// execConfig is sent to the exec helper over its config pipe.
type execConfig struct {
	Process process `json:"process"`
	Caps    capMask `json:"caps"`
	// Sandbox carries the container's seccomp filter, rlimits and groups:
	// a process run inside the container gets the same ones, as with docker
	// exec (with the filter, or the container could ptrace it to make the
	// calls the filter denies).
	Sandbox sandboxConfig `json:"sandbox"`
}

// Child file descriptors of the exec helper, as for the init, and a pidfd
// of the container's init: the helper lives in the container's PID
// namespace, where the init's pid in the worker's means nothing.
const (
	execConfigFD = 3
	execErrorFD  = 4
	execPidFD    = 5
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
		Args:       []string{ExecArg, c.spec.ID},
		Env:        helperEnv(),
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
	b, _ := json.Marshal(execConfig{Process: p, Caps: c.caps, Sandbox: sb})
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

// runExec is the exec helper (see Container.exec). It never returns.
func runExec() {
	goruntime.LockOSThread()
	errPipe := os.NewFile(execErrorFD, "exec-error")
	err := execInContainer()
	_, _ = io.WriteString(errPipe, err.Error())
	code := 126
	var ee *execError
	if errors.As(err, &ee) {
		code = ee.code
	}
	os.Exit(code)
}

func execInContainer() error {
	var cfg execConfig
	b, err := io.ReadAll(os.NewFile(execConfigFD, "exec-config"))
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		return fmt.Errorf("reading exec config: %w", err)
	}
	unix.CloseOnExec(execErrorFD)
	fd := execPidFD
	// setns into a mount namespace needs an fs_struct of our own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unsharing fs: %w", err)
	}
	for _, ns := range []struct {
		name string
		flag int
	}{{"cgroup", unix.CLONE_NEWCGROUP}, {"network", unix.CLONE_NEWNET}, {"UTS", unix.CLONE_NEWUTS},
		{"IPC", unix.CLONE_NEWIPC}, {"mount", unix.CLONE_NEWNS}} {
		if err := unix.Setns(fd, ns.flag); err != nil {
			return fmt.Errorf("joining the container's %s namespace: %w", ns.name, err)
		}
	}
	unix.Close(fd)
	p := cfg.Process
	cred, home, err := resolveUser(p.User, cfg.Sandbox.Groups)
	if err != nil {
		return err
	}
	env := p.Env
	if !hasKey(env, "HOME") {
		env = append(env, "HOME="+home)
	}
	if err := unix.Chdir(p.Cwd); err != nil {
		return fmt.Errorf("changing to working directory %q: %w", p.Cwd, err)
	}
	path, err := lookPath(p.Args[0], envValue(env, "PATH"))
	if err != nil {
		return err
	}
	if err := confineProcess(cred, cfg.Caps, cfg.Sandbox.Rlimits, cfg.Sandbox.Seccomp, thisThread); err != nil {
		return err
	}
	err = unix.Exec(path, p.Args, env)
	code := 126
	if errors.Is(err, unix.ENOENT) {
		code = 127
	}
	return &execError{msg: fmt.Sprintf("exec %q: %v", path, err), code: code}
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
