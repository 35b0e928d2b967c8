// Package managerrole runs the manager role of a promoted worker as a
// child process: the manager binary installed next to the worker's, with
// the worker's node identity and its data under DATA/manager.
//
// The role is a separate program so that the worker binary, which every
// node runs, does not link the manager (Raft store, Control API,
// orchestrator, scheduler, registry server): a worker's resident memory is
// mostly its binary's pages, so every node paid for the manager code that
// only promoted workers run.
package managerrole

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/minke-io/minke/pkg/membership"
)

// The interface between the worker and the manager binary it starts.
const (
	// Flag makes the manager binary the role of a promoted worker:
	// without --join it only resumes existing state (never bootstraps a
	// cluster of its own), the join token comes from TokenEnv, and a
	// demotion exits with ExitDemoted.
	Flag = "promoted-worker"
	// TokenEnv carries the manager join token (not the command line,
	// which every user can read in /proc).
	TokenEnv = "MINKE_PROMOTED_TOKEN"
	// ExitDemoted is the manager's exit status when the node was demoted.
	ExitDemoted = 3
	// BinaryName is the manager binary's file name, looked for next to the
	// running worker binary.
	BinaryName = "manager"
)

// stopGrace is how long the role has to stop after SIGTERM before it is
// killed.
const stopGrace = 30 * time.Second

// Config is one run of the manager role.
type Config struct {
	// Binary is the manager program; default: BinaryName next to the
	// running executable.
	Binary string
	// WorkerDataDir holds the node's identity (node-id, node-secret), which
	// the role copies into Dir.
	WorkerDataDir string
	// Dir is the role's data directory (DATA/manager); its control socket
	// is Dir/control.sock.
	Dir        string
	ListenAddr string
	GossipAddr string
	Hostname   string
	Gossip     membership.Tuning
	LogLevel   slog.Level
	// Token and JoinAddr join the managers; JoinAddr "" resumes the role
	// from the state in Dir.
	Token, JoinAddr string
	// Stderr receives the role's log; default os.Stderr.
	Stderr io.Writer
}

// ErrDemoted: the role stopped because the node was demoted; its Raft
// state has been removed, so that a later promotion joins afresh.
var ErrDemoted = errors.New("managerrole: demoted")

// Run runs the manager role until it stops or ctx ends (then it is sent
// SIGTERM, and killed after stopGrace). It gets SIGTERM too when the
// worker dies (Pdeathsig): the role does not outlive its worker, as when
// it ran inside it. A demotion returns ErrDemoted.
func Run(ctx context.Context, cfg Config) error {
	bin := cfg.Binary
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("manager role: locating the manager binary: %w", err)
		}
		bin = filepath.Join(filepath.Dir(self), BinaryName)
	}
	if fi, err := os.Stat(bin); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("manager role: this node was promoted but %s is not an executable manager binary (install it next to the worker: install.sh --role worker does): %v", bin, err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("manager role: %w", err)
	}
	for _, f := range []string{"node-id", "node-secret"} {
		b, err := os.ReadFile(filepath.Join(cfg.WorkerDataDir, f))
		if err != nil {
			return fmt.Errorf("manager role: %w", err)
		}
		if err := os.WriteFile(filepath.Join(cfg.Dir, f), b, 0o600); err != nil {
			return fmt.Errorf("manager role: %w", err)
		}
	}
	args := []string{"--" + Flag,
		"--data-dir", cfg.Dir, "--listen-addr", cfg.ListenAddr, "--gossip-addr", cfg.GossipAddr,
		"--control-socket", filepath.Join(cfg.Dir, "control.sock"), "--hostname", cfg.Hostname,
		"--log-level", cfg.LogLevel.String(),
	}
	g := cfg.Gossip
	if g.ProbeInterval != 0 {
		args = append(args, "--gossip-probe-interval", g.ProbeInterval.String())
	}
	if g.ProbeTimeout != 0 {
		args = append(args, "--gossip-probe-timeout", g.ProbeTimeout.String())
	}
	if g.SuspicionMult != 0 {
		args = append(args, "--gossip-suspicion-mult", strconv.Itoa(g.SuspicionMult))
	}
	if cfg.JoinAddr != "" {
		args = append(args, "--join", cfg.JoinAddr)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	if cfg.JoinAddr != "" {
		cmd.Env = append(cmd.Env, TokenEnv+"="+cfg.Token)
	}
	cmd.Stdout = cfg.Stderr
	cmd.Stderr = cfg.Stderr
	if cmd.Stderr == nil {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	cmd.SysProcAttr = diesWithParent()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	// Pdeathsig (diesWithParent) fires when the forking thread ends, not
	// the process, and the Go runtime ends threads (one a goroutine left
	// locked, as the container runtime's namespace-joining helpers do). The
	// fork runs on a thread locked for as long as the role runs, which
	// therefore lives.
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		errc <- cmd.Run()
	}()
	err := <-errc
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == ExitDemoted:
		if err := os.RemoveAll(filepath.Join(cfg.Dir, "raft")); err != nil {
			return fmt.Errorf("manager role: demoted, removing its Raft state: %w", err)
		}
		return ErrDemoted
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil && cfg.JoinAddr != "":
		// A join that failed leaves no half-made member behind: the next
		// promotion joins afresh.
		_ = os.RemoveAll(filepath.Join(cfg.Dir, "raft"))
	}
	if err != nil {
		return fmt.Errorf("manager role (%s): %w", bin, err)
	}
	return errors.New("manager role: the manager process exited")
}
