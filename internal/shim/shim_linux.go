package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runShim is the shim process. It never returns.
//
// The shim is the parent of one container's init. It is started by the
// worker's Container.Start in a session of its own and outlives the
// worker that started it, so a worker can be restarted or upgraded while
// containers keep running. It
//   - starts the init (cgroup, namespaces) and reports its pid or why it
//     could not start;
//   - owns the container's stdout and stderr and writes them to the log as
//     JSON lines, rotating by size;
//   - waits for the init and, before it exits, writes its exit status to
//     exit.json, which outlives the shim and any worker process.
//
// Everything else goes through the files in the container directory and
// pidfds: the worker signals the init directly (Kill, Stop), learns of the
// exit when the shim process ends (pidfd readable), and reads exit.json.
// A worker that starts later finds the shim through state.json and adopts
// the container (Runtime.Adopt).
//
// A shim may be started before there is a container for it (a warm shim,
// see pkg/runtime Runtime.takeShim): it waits for its configuration, and exits if the
// config pipe closes empty, which is also what a worker's death does to an
// unused shim (only the worker holds the pipe's write end). The init is forked only then: forked earlier, its new mount
// namespace would lack the container's rootfs, mounted since.
func runShim() {
	ready := os.NewFile(ShimReadyFD, "shim-ready")
	// The shim lives in its own session; signals meant for the worker must
	// not end it, and with it the container's stdio. Caught, not ignored:
	// an ignored signal would stay ignored in the container's command.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for range sigs {
		}
	}()

	var cfg Config
	b, err := io.ReadAll(os.NewFile(ShimConfigFD, "shim-config"))
	if err == nil && len(b) == 0 {
		os.Exit(0) // discarded before use, or the worker died
	}
	phases := StartPhases{Received: MonotonicNow()}
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		shimFail(ready, fmt.Errorf("reading shim config: %w", err))
	}
	// The container directory is the shim's home: its messages go to
	// shim.log, and /proc/PID/cwd names its container.
	if err := os.Chdir(cfg.Dir); err != nil {
		shimFail(ready, err)
	}
	if f, err := os.OpenFile(ShimLogName, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err == nil {
		_ = unix.Dup2(int(f.Fd()), 1)
		_ = unix.Dup2(int(f.Fd()), 2)
		f.Close()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "shim", "container_id", cfg.ID)
	initCfg, err := encodeInitConfig(cfg.Init)
	if err != nil {
		shimFail(ready, err)
	}
	pre, err := forkInit(cfg.Cgroup, initCloneflags(cfg.Init))
	if err != nil {
		shimFail(ready, err)
	}
	phases.Forked = MonotonicNow()
	// The configuration goes out at once: the init reads it as soon as its
	// Go runtime has started, while this process opens the log.
	if err := pre.send(initCfg); err != nil {
		pre.abort()
		shimFail(ready, fmt.Errorf("sending config to init: %w", err))
	}
	lw, err := OpenLogWriter(filepath.Join(cfg.Dir, "container.log"), cfg.LogMaxSize, cfg.LogMaxFiles)
	if err != nil {
		pre.abort()
		shimFail(ready, fmt.Errorf("opening log: %w", err))
	}
	cmd, pumps, err := pre.run(lw)
	if err != nil {
		shimFail(ready, err)
	}
	phases.Execd = MonotonicNow()
	pid := cmd.Process.Pid
	start, _ := PidStartTime(pid)
	self := os.Getpid()
	selfStart, _ := PidStartTime(self)
	st := StateFile{ID: cfg.ID, Pid: pid, PidStart: start, ShimPid: self, ShimStart: selfStart}
	if err := WriteJSONFile(filepath.Join(cfg.Dir, StateFileName), st); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		shimFail(ready, fmt.Errorf("writing state: %w", err))
	}
	rb, _ := json.Marshal(Ready{State: st, Phases: phases})
	_, _ = ready.Write(rb)
	ready.Close()

	_ = cmd.Wait() // the status is read from ProcessState
	ex := ExitFile{ExitedAt: time.Now().UTC()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			ex.Signal = ws.Signal()
			ex.ExitCode = 128 + int(ex.Signal)
		} else {
			ex.ExitCode = ws.ExitStatus()
		}
	}
	// The init was pid 1 of its namespace: every other process of the
	// container is gone, so the pipes reach EOF; bounded all the same.
	drained := make(chan struct{})
	go func() { pumps.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		logger.Warn("container output still open 5s after exit; closing the log")
	}
	_ = lw.Close()
	if err := writeExitFile(filepath.Join(cfg.Dir, ExitFileName), ex); err != nil {
		logger.Error("writing exit status", "error", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func shimFail(ready *os.File, err error) {
	b, _ := json.Marshal(Ready{Error: err.Error()})
	_, _ = ready.Write(b)
	os.Exit(1)
}

// preInit is a container init forked before it is configured: it waits in
// its new namespaces and its container's cgroup for its config.
type preInit struct {
	cmd        *exec.Cmd
	outR, errR *os.File // its stdout and stderr
	cfgW       *os.File // its config pipe
	failR      *os.File // its error pipe: EOF once it has exec'd
}

// initCloneflags are the namespaces the init is forked into: new PID,
// mount, UTS and IPC namespaces, and a new network namespace unless the
// init is to join one (NetNS) and then exec. Creating a network namespace
// is the costliest part of the fork (1.5 ms here), and one the init leaves
// at once is waste. The --init reaper keeps it: it does not exec, so only
// the thread that joined NetNS would be in it, and its other threads
// (the one /proc/PID/ns/net may show among them) are better in an empty
// namespace than in the host's.
func initCloneflags(cfg InitConfig) uintptr {
	flags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if cfg.NetNS == "" || cfg.Init {
		flags |= unix.CLONE_NEWNET
	}
	return flags
}

// forkInit starts an init in the namespaces of cloneflags (the cgroup
// namespace it creates itself), born in the container's cgroup
// (StartInCgroup), so nothing of it ever runs unconfined.
func forkInit(cg Cgroup, cloneflags uintptr) (*preInit, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	failR, failW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{InitArg},
		Env:        HelperEnv(),
		Stdout:     outW,
		Stderr:     errW,
		ExtraFiles: []*os.File{cfgR, failW},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: cloneflags,
			Setsid:     true,
		},
	}
	err = StartInCgroup(cg, cmd)
	for _, f := range []*os.File{outW, errW, cfgR, failW} {
		f.Close()
	}
	if err != nil {
		for _, f := range []*os.File{outR, errR, cfgW, failR} {
			f.Close()
		}
		return nil, fmt.Errorf("starting the container init: %w", err)
	}
	return &preInit{cmd: cmd, outR: outR, errR: errR, cfgW: cfgW, failR: failR}, nil
}

// abort kills an init that will not be configured.
func (p *preInit) abort() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	for _, f := range []*os.File{p.outR, p.errR, p.cfgW, p.failR} {
		f.Close()
	}
}

// send writes the init's configuration (encodeInitConfig) and closes the
// config pipe.
func (p *preInit) send(b []byte) error {
	_, err := p.cfgW.Write(b)
	if cerr := p.cfgW.Close(); err == nil {
		err = cerr
	}
	return err
}

// run pipes the init's output to lw and returns once it has exec'd the
// command (or failed to).
func (p *preInit) run(lw *LogWriter) (*exec.Cmd, *sync.WaitGroup, error) {
	defer p.failR.Close()
	pumps := &sync.WaitGroup{}
	for _, pp := range []struct {
		stream string
		r      *os.File
	}{{"stdout", p.outR}, {"stderr", p.errR}} {
		pumps.Add(1)
		go func() {
			defer pumps.Done()
			defer pp.r.Close()
			if err := lw.Pump(pp.stream, pp.r); err != nil {
				// Keep reading: a container must never block on a full pipe.
				_, _ = io.Copy(io.Discard, pp.r)
			}
		}()
	}
	fail := func(err error) (*exec.Cmd, *sync.WaitGroup, error) {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		return nil, nil, err
	}
	// The init closes the error pipe by exec'ing (CLOEXEC) or writes why it
	// could not.
	msg, _ := io.ReadAll(io.LimitReader(p.failR, 4096))
	if len(msg) > 0 {
		return fail(errors.New(strings.TrimSpace(string(msg))))
	}
	return p.cmd, pumps, nil
}

// writeExitFile writes v as JSON to path atomically (write, rename). It
// does not fsync: the file has to survive the worker process, not the
// machine; after a machine crash no container runs on, and a container
// without exit.json is cleaned at start-up and reported lost.
func writeExitFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
