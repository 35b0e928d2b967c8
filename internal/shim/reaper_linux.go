package shim

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// runReaper is the end of the init with ContainerSpec.Init (docker run
// --init): instead of exec'ing the command, the init forks it and stays as
// the container's pid 1, forwarding every signal it gets to the command and
// reaping every process that exits in the container (orphans are
// re-parented to pid 1). It exits with the command's status, 128+signal
// when the command was killed, as docker-init (tini) does. It returns only
// if the command could not be started.
//
// The calling thread has its final credentials, capabilities and
// no_new_privs; the fork runs on it (the init's main thread is locked), so
// the command gets exactly those.
func runReaper(path string, args, env []string) error {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		return &execError{msg: fmt.Sprintf("exec %q: %v", path, err), code: 126}
	}
	// Started: close the error pipe, so the shim knows.
	unix.Close(initErrorFD)
	go func() {
		for s := range sigs {
			sig := s.(syscall.Signal)
			if sig == syscall.SIGCHLD || sig == syscall.SIGURG { // SIGURG: Go's preemption
				continue
			}
			_ = syscall.Kill(pid, sig)
		}
	}()
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			os.Exit(255) // ECHILD: cannot happen while the command lives
		}
		if got != pid {
			continue // a reaped orphan
		}
		if ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(ws.ExitStatus())
	}
}
