package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/minke-io/minke/internal/shim"
)

// shimProc is a started shim waiting for its configuration.
type shimProc struct {
	cmd    *exec.Cmd
	cfgW   *os.File      // the shim's config pipe
	readyR *os.File      // the shim's answer
	exited chan struct{} // closed once the shim has been reaped
}

// spawnShim starts a shim (see runShim), which waits for its
// configuration. An unused shim exits when this process does: its config
// pipe then closes empty.
func (r *Runtime) spawnShim() (*shimProc, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:       r.exe,
		Args:       []string{shim.ShimArg},
		Env:        shim.HelperEnv(),
		Dir:        r.root,
		ExtraFiles: []*os.File{cfgR, readyW},
		// A session (and process group) of its own: signals to the
		// worker's group leave the shim running.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	cfgR.Close()
	readyW.Close()
	if err != nil {
		cfgW.Close()
		readyR.Close()
		return nil, fmt.Errorf("starting shim %s: %w", r.exe, err)
	}
	s := &shimProc{cmd: cmd, cfgW: cfgW, readyR: readyR, exited: make(chan struct{})}
	// The shim is this process's child until this process exits: reap it.
	go func() { _ = cmd.Wait(); close(s.exited) }()
	return s, nil
}

// takeShim returns the warm shim if there is one, else starts one, and
// starts the next warm shim in the background: the start of the shim
// process (creation, Go runtime start) is then off the path of the next
// Start.
func (r *Runtime) takeShim() (*shimProc, error) {
	var s *shimProc
	select {
	case s = <-r.warm:
		select {
		case <-s.exited: // died meanwhile (killed): start a new one
			s.close()
			s = nil
		default:
		}
	default:
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		next, err := r.spawnShim()
		if err != nil {
			r.log.Warn("starting a warm shim", "error", err)
			return
		}
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			next.discard()
			return
		}
		select {
		case r.warm <- next:
		default: // another one got there first
			next.discard()
		}
	}()
	if s != nil {
		return s, nil
	}
	return r.spawnShim()
}

// discard ends an unused shim: without a configuration it exits.
func (s *shimProc) discard() {
	s.cfgW.Close()
	<-s.exited
	s.readyR.Close()
}

func (s *shimProc) close() {
	s.cfgW.Close()
	s.readyR.Close()
}

// closeWarm discards the warm shim (Close).
func (r *Runtime) closeWarm() {
	for {
		select {
		case s := <-r.warm:
			s.discard()
		default:
			return
		}
	}
}
