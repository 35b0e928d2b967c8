package runtime

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

// runShim is the shim process (see shim.go). It never returns.
func runShim() {
	ready := os.NewFile(shimReadyFD, "shim-ready")
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "shim")
	// The shim lives in its own session; signals meant for the worker must
	// not end it, and with it the container's stdio. Caught, not ignored:
	// an ignored signal would stay ignored in the container's command.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for range sigs {
		}
	}()

	var cfg shimConfig
	b, err := io.ReadAll(os.NewFile(shimConfigFD, "shim-config"))
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		shimFail(ready, fmt.Errorf("reading shim config: %w", err))
	}
	logger = logger.With("container_id", cfg.ID)
	lw, err := openLogWriter(filepath.Join(cfg.Dir, "container.log"), cfg.LogMaxSize, cfg.LogMaxFiles)
	if err != nil {
		shimFail(ready, fmt.Errorf("opening log: %w", err))
	}
	cmd, pumps, err := startInit(cfg, lw)
	if err != nil {
		shimFail(ready, err)
	}
	pid := cmd.Process.Pid
	start, _ := pidStartTime(pid)
	self := os.Getpid()
	selfStart, _ := pidStartTime(self)
	st := stateFile{ID: cfg.ID, Pid: pid, PidStart: start, ShimPid: self, ShimStart: selfStart}
	if err := writeJSONFile(filepath.Join(cfg.Dir, stateFileName), st); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		shimFail(ready, fmt.Errorf("writing state: %w", err))
	}
	rb, _ := json.Marshal(shimReady{State: st})
	_, _ = ready.Write(rb)
	ready.Close()

	_ = cmd.Wait() // the status is read from ProcessState
	ex := exitFile{ExitedAt: time.Now().UTC()}
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
	_ = lw.close()
	if err := writeExitFile(filepath.Join(cfg.Dir, exitFileName), ex); err != nil {
		logger.Error("writing exit status", "error", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func shimFail(ready *os.File, err error) {
	b, _ := json.Marshal(shimReady{Error: err.Error()})
	_, _ = ready.Write(b)
	os.Exit(1)
}

// startInit starts the container's init with its output piped to lw and
// returns once the init has exec'd the command (or failed to).
func startInit(cfg shimConfig, lw *logWriter) (*exec.Cmd, *sync.WaitGroup, error) {
	cg, err := detectCgroups(cfg.CgroupMount, cfg.CgroupParent)
	if err != nil {
		return nil, nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer cfgW.Close()
	failR, failW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer failR.Close()

	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{InitArg, cfg.ID},
		Env:        []string{},
		Stdout:     outW,
		Stderr:     errW,
		ExtraFiles: []*os.File{cfgR, failW},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS |
				unix.CLONE_NEWIPC | unix.CLONE_NEWNET,
			Setsid: true,
		},
	}
	err = cmd.Start()
	for _, f := range []*os.File{outW, errW, cfgR, failW} {
		f.Close()
	}
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, nil, err
	}
	pumps := &sync.WaitGroup{}
	for _, p := range []struct {
		stream string
		r      *os.File
	}{{"stdout", outR}, {"stderr", errR}} {
		pumps.Add(1)
		go func() {
			defer pumps.Done()
			defer p.r.Close()
			if err := lw.pump(p.stream, p.r); err != nil {
				// Keep reading: a container must never block on a full pipe.
				_, _ = io.Copy(io.Discard, p.r)
			}
		}()
	}
	fail := func(err error) (*exec.Cmd, *sync.WaitGroup, error) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, nil, err
	}
	if err := cg.AddProc(cfg.ID, cmd.Process.Pid); err != nil {
		return fail(err)
	}
	b, err := json.Marshal(cfg.Init)
	if err != nil {
		return fail(err)
	}
	if _, err := cfgW.Write(b); err != nil {
		return fail(fmt.Errorf("sending config to init: %w", err))
	}
	cfgW.Close()
	// The init closes the error pipe by exec'ing (CLOEXEC) or writes why it
	// could not.
	msg, _ := io.ReadAll(io.LimitReader(failR, 4096))
	if len(msg) > 0 {
		return fail(errors.New(strings.TrimSpace(string(msg))))
	}
	return cmd, pumps, nil
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
