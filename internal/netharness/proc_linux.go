package netharness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultStopTimeout is the grace period Restart gives a running process
// between SIGTERM and SIGKILL.
const DefaultStopTimeout = 5 * time.Second

// Proc is a process started by Host.Start. It runs in its host's network
// namespace (and the test's mount, PID and other namespaces), in a process
// group of its own, with stdout and stderr appended to a log file. Its
// methods are safe for concurrent use.
type Proc struct {
	host    *Host
	name    string
	bin     string
	args    []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once the current run has been reaped
	err  error         // the current run's exit error, valid once done is closed
	runs int
}

// procRun identifies one run of a process across PID reuse.
type procRun struct {
	pid   int
	start string // field 22 of /proc/PID/stat
}

// Start runs bin with args inside the host's network namespace, through
// `nsenter --net` (not `ip netns exec`, which would remount /sys and hide
// /sys/fs/cgroup). name labels the log file and failure dumps. It fails the
// test if the process cannot be started; a process that starts and exits at
// once is not a failure of Start.
//
// The process gets SIGKILL if the test binary dies (Pdeathsig, from a
// dedicated thread, see forker), so a test timeout does not leave it running.
func (hst *Host) Start(name string, bin string, args ...string) *Proc {
	h := hst.h
	h.t.Helper()
	path := bin
	if !strings.Contains(bin, "/") {
		p, err := exec.LookPath(bin)
		if err != nil {
			h.t.Fatalf("netharness: Start(%q) on host %d: %v", name, hst.index, err)
		}
		path = p
	}
	h.mu.Lock()
	h.logSeq++
	logPath := filepath.Join(h.logDir, fmt.Sprintf("%02d-host%d-%s.log", h.logSeq, hst.index, sanitize(name)))
	h.mu.Unlock()
	p := &Proc{host: hst, name: name, bin: path, args: args, logPath: logPath}
	if err := p.start(); err != nil {
		h.t.Fatalf("netharness: Start(%q) on host %d: %v", name, hst.index, err)
	}
	return p
}

// start launches a new run; it registers the Proc with the harness so Close
// always kills it, and refuses once the harness is closed.
func (p *Proc) start() error {
	h := p.host.h
	p.mu.Lock()
	defer p.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("harness is closed")
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close() // the child holds its own copy
	p.runs++
	fmt.Fprintf(f, "=== netharness: run %d of %q on host %d (%s): %s %s\n",
		p.runs, p.name, p.host.index, p.host.IP(), p.bin, strings.Join(p.args, " "))
	cmd := exec.Command("nsenter", append([]string{"--net=" + p.host.NetnsPath(), "--", p.bin}, p.args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	errc := make(chan error, 1)
	h.forks <- forkReq{cmd: cmd, err: errc}
	if err := <-errc; err != nil {
		return err
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	if p.runs == 1 {
		h.procs = append(h.procs, p)
	}
	h.runs = append(h.runs, procRun{pid: cmd.Process.Pid, start: procStart(cmd.Process.Pid)})
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if p.cmd == cmd {
			p.err = err
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// current returns the current run; done is nil if never started.
func (p *Proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// signalGroup signals the current run's process group, unless the run has
// been reaped (its PGID could then belong to someone else).
func (p *Proc) signalGroup(sigs ...syscall.Signal) bool {
	cmd, done := p.current()
	select {
	case <-done:
		return false
	default:
	}
	for _, s := range sigs {
		_ = syscall.Kill(-cmd.Process.Pid, s)
	}
	return true
}

// Kill sends SIGKILL to the process group and waits until the process is
// reaped. It is a no-op if the process is not running.
func (p *Proc) Kill() {
	if !p.signalGroup(syscall.SIGKILL) {
		return
	}
	if err := p.Wait(killTimeout); errors.Is(err, ErrTimeout) {
		p.host.h.t.Errorf("netharness: %s: %v", p.name, err)
	}
}

// Stop sends SIGTERM (and SIGCONT, in case it is paused) to the process
// group, and SIGKILL if the process has not exited after timeout. It waits
// until the process is reaped.
func (p *Proc) Stop(timeout time.Duration) {
	if !p.signalGroup(syscall.SIGTERM, syscall.SIGCONT) {
		return
	}
	if err := p.Wait(timeout); errors.Is(err, ErrTimeout) {
		p.Kill()
	}
}

// Pause freezes the process group with SIGSTOP: it keeps its sockets, but
// answers nothing, like a hung process or a VM pause.
func (p *Proc) Pause() { p.signalGroup(syscall.SIGSTOP) }

// Resume continues a paused process group with SIGCONT.
func (p *Proc) Resume() { p.signalGroup(syscall.SIGCONT) }

// Restart stops the process if it is running (Stop with
// DefaultStopTimeout; call Kill first for a crash) and starts it again with
// the same command, appending to the same log. It fails the test if the new
// run cannot be started.
func (p *Proc) Restart() {
	p.host.h.t.Helper()
	p.Stop(DefaultStopTimeout)
	if err := p.start(); err != nil {
		p.host.h.t.Fatalf("netharness: Restart(%q) on host %d: %v", p.name, p.host.index, err)
	}
}

// Wait waits up to timeout for the current run to exit. It returns nil for
// exit status 0, the *exec.ExitError otherwise, and an error wrapping
// ErrTimeout if the process is still running.
func (p *Proc) Wait(timeout time.Duration) error {
	_, done := p.current()
	select {
	case <-done: // checked first, so Wait(0) on an exited process is not a timeout
	default:
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			return fmt.Errorf("%w: %s still running after %v", ErrTimeout, p.name, timeout)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != done { // restarted meanwhile; the run we waited for has gone
		return nil
	}
	return p.err
}

// Pid is the current run's process ID (also its process group ID).
func (p *Proc) Pid() int {
	cmd, _ := p.current()
	return cmd.Process.Pid
}

// Running reports whether the current run has not exited yet. A paused
// process is running.
func (p *Proc) Running() bool {
	_, done := p.current()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Name is the label given to Start.
func (p *Proc) Name() string { return p.name }

// Host is the host the process runs on.
func (p *Proc) Host() *Host { return p.host }

// LogPath is the file that collects the process's stdout and stderr.
func (p *Proc) LogPath() string { return p.logPath }

// Log returns the log's contents so far, every run included; each run
// starts with a "=== netharness: run N" line.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(netharness: reading log: %v)", err)
	}
	return string(b)
}

// procStart returns the process's start time in clock ticks since boot, or
// "" if it has gone.
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may contain spaces; fields after ")" are
	// fixed: state is field 3, starttime field 22.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// procState returns the one-letter state of /proc/PID/stat ("R", "S", "T",
// "Z", ...), or "" if the process has gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, name)
}
