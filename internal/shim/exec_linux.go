package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	goruntime "runtime"

	"golang.org/x/sys/unix"
)

// The exec helper runs a command inside a running container. pkg/runtime
// joins the container's PID namespace on a dedicated thread and forks the
// helper from it (Go cannot setns into a PID namespace for itself, only for
// children); the helper, on a thread with its own fs_struct, joins the
// other namespaces, drops privileges and execs the command.

// runExec is the exec helper (see pkg/runtime Container.exec). It never returns.
func runExec() {
	goruntime.LockOSThread()
	errPipe := os.NewFile(ExecErrorFD, "exec-error")
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
	var cfg ExecConfig
	b, err := io.ReadAll(os.NewFile(ExecConfigFD, "exec-config"))
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		return fmt.Errorf("reading exec config: %w", err)
	}
	unix.CloseOnExec(ExecErrorFD)
	fd := ExecPidFD
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
	if !HasKey(env, "HOME") {
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
