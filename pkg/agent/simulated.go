package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/runtime"
)

// SimulatedExecutor is an Executor that starts no process: its containers
// "run" from Start until they are stopped or killed. It exists only so
// that benchmarks and scale tests (worker --runtime=simulated) can drive
// the real control plane — Join, Dispatcher sessions, the runner's
// ACCEPTED → PREPARING → STARTING → RUNNING reports, shutdowns — for
// thousands of nodes from one process. It never pulls images, so a task
// with any image name runs.
type SimulatedExecutor struct {
	// done, when closed, ends every Wait (see Close).
	done      chan struct{}
	closeOnce sync.Once
}

var (
	_ Executor  = (*SimulatedExecutor)(nil)
	_ Container = (*simulatedContainer)(nil)
)

// errSimulatedClosed ends Wait calls once the executor is closed.
var errSimulatedClosed = errors.New("agent: simulated executor closed")

// NewSimulatedExecutor returns an executor of simulated containers.
func NewSimulatedExecutor() *SimulatedExecutor {
	return &SimulatedExecutor{done: make(chan struct{})}
}

// Close makes every pending and later Wait return an error, so nothing
// waits on a simulated process after the agents using it have stopped.
func (e *SimulatedExecutor) Close() { e.closeOnce.Do(func() { close(e.done) }) }

// Create returns a created, not yet started, simulated container.
func (e *SimulatedExecutor) Create(ctx context.Context, spec runtime.ContainerSpec) (Container, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if spec.ID == "" {
		return nil, errors.New("agent: simulated container: spec.ID is required")
	}
	return &simulatedContainer{e: e, exited: make(chan struct{})}, nil
}

// ReadLogs reports that simulated containers write no logs.
func (e *SimulatedExecutor) ReadLogs(ctx context.Context, id string, opts runtime.LogOptions, fn func(runtime.LogEntry) error) error {
	return fmt.Errorf("simulated container %s: %w", id, fs.ErrNotExist)
}

// simulatedContainer is a container without a process. A stop ends it as a
// process that handles SIGTERM would (exit code 0); a kill as a process
// killed by the signal (128+signal).
type simulatedContainer struct {
	e      *SimulatedExecutor
	once   sync.Once
	exited chan struct{}
	status runtime.ExitStatus // set before exited is closed
}

func (c *simulatedContainer) exit(st runtime.ExitStatus) {
	c.once.Do(func() {
		st.ExitedAt = time.Now()
		c.status = st
		close(c.exited)
	})
}

func (c *simulatedContainer) Start(ctx context.Context) error { return ctx.Err() }

// Pid is 0: there is no process.
func (c *simulatedContainer) Pid() int { return 0 }

func (c *simulatedContainer) Wait(ctx context.Context) (runtime.ExitStatus, error) {
	select {
	case <-c.exited:
		return c.status, nil
	case <-c.e.done:
		return runtime.ExitStatus{}, errSimulatedClosed
	case <-ctx.Done():
		return runtime.ExitStatus{}, ctx.Err()
	}
}

func (c *simulatedContainer) Stop(context.Context, time.Duration) error {
	c.exit(runtime.ExitStatus{})
	return nil
}

func (c *simulatedContainer) Kill(sig syscall.Signal) error {
	c.exit(runtime.ExitStatus{ExitCode: 128 + int(sig), Signal: sig})
	return nil
}

func (c *simulatedContainer) Exited() (runtime.ExitStatus, bool) {
	select {
	case <-c.exited:
		return c.status, true
	default:
		return runtime.ExitStatus{}, false
	}
}

// Health is always "no healthcheck": a simulated container runs no checks.
func (c *simulatedContainer) Health() runtime.HealthStatus { return runtime.HealthStatus{} }

// HealthChanges is nil: no health change ever comes.
func (c *simulatedContainer) HealthChanges() <-chan runtime.HealthStatus { return nil }

func (c *simulatedContainer) Remove(context.Context) error {
	c.exit(runtime.ExitStatus{ExitCode: 128 + int(syscall.SIGKILL), Signal: syscall.SIGKILL})
	return nil
}

// SimulatedConfig configures RunSimulated.
type SimulatedConfig struct {
	// DataDir keeps the nodes' identities (file simulated-nodes: one
	// "ID SECRET" line per node), so a restarted process is the same nodes.
	DataDir        string
	DispatcherAddr string
	Token          string
	// Nodes is how many nodes this process acts as.
	Nodes int
	// Addr is the IP the nodes advertise (all the same).
	Addr string
	// Description is every node's description; each gets the hostname
	// Description.Hostname-NNNNN and the worker role.
	Description *minkepb.NodeDescription
	// JoinParallelism bounds concurrent Join calls; 0 takes 128.
	JoinParallelism int
	Logger          *slog.Logger
	// Ready, if set, is called with the node IDs once every node joined.
	Ready func(nodeIDs []string)
}

// RunSimulated acts as cfg.Nodes workers with simulated containers until
// ctx ends. Each node is a real node to the managers: it joins with the
// token, gets its own ID and secret, and holds its own Dispatcher session
// on its own connection through its own Agent. None of them gossips
// (GossipPort 0): the leader marks such a node READY while it holds a
// session and DOWN once it has held none for a grace period (see
// dispatcher.Liveness), which is the path swarm itself uses for every node.
func RunSimulated(ctx context.Context, cfg SimulatedConfig) error {
	switch {
	case cfg.Nodes <= 0:
		return fmt.Errorf("worker: --simulate-nodes must be at least 1, not %d", cfg.Nodes)
	case cfg.DataDir == "":
		return errors.New("worker: --data-dir is required")
	case cfg.Logger == nil:
		cfg.Logger = slog.Default()
	}
	if cfg.JoinParallelism <= 0 {
		cfg.JoinParallelism = 128
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("worker: data dir: %w", err)
	}
	idFile := filepath.Join(cfg.DataDir, "simulated-nodes")
	ids, err := readIdentities(idFile)
	if err != nil {
		return err
	}
	exec := NewSimulatedExecutor()
	defer exec.Close()
	prefix := cfg.Description.GetHostname()
	if prefix == "" {
		prefix = "sim"
	}
	agents := make([]*Agent, cfg.Nodes)
	defer func() {
		for _, a := range agents {
			if a != nil {
				_ = a.Close()
			}
		}
	}()
	for i := range agents {
		desc := proto.Clone(cfg.Description).(*minkepb.NodeDescription)
		if desc == nil {
			desc = &minkepb.NodeDescription{}
		}
		desc.Hostname, desc.Worker = fmt.Sprintf("%s-%05d", prefix, i+1), true
		var id identity
		if i < len(ids) {
			id = ids[i]
		}
		a, err := New(Config{DispatcherAddr: cfg.DispatcherAddr, Token: cfg.Token, NodeID: id.id, NodeSecret: id.secret,
			Description: desc, Addr: cfg.Addr, Logger: cfg.Logger.With("node", desc.Hostname), Runtime: exec})
		if err != nil {
			return err
		}
		agents[i] = a
	}
	if err := joinAll(ctx, agents, cfg.JoinParallelism); err != nil {
		return err
	}
	joined := make([]identity, len(agents))
	nodeIDs := make([]string, len(agents))
	for i, a := range agents {
		joined[i] = identity{a.NodeID(), a.Secret()}
		nodeIDs[i] = a.NodeID()
	}
	if err := writeIdentities(idFile, joined); err != nil {
		return err
	}
	cfg.Logger.Info("simulated nodes joined", "nodes", len(agents), "manager", cfg.DispatcherAddr)
	if cfg.Ready != nil {
		cfg.Ready(nodeIDs)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		refused int
	)
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(ctx); err != nil {
				cfg.Logger.Warn("simulated node stopped", "node_id", a.NodeID(), "err", err)
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if refused > 0 && ctx.Err() == nil {
		return fmt.Errorf("worker: %d of %d simulated nodes were refused a session", refused, len(agents))
	}
	return nil
}

// joinAll joins every agent, at most par at a time, and returns the first
// error.
func joinAll(ctx context.Context, agents []*Agent, par int) error {
	jctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	sem := make(chan struct{}, par)
	errs := make(chan error, len(agents))
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := a.Join(jctx); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

type identity struct{ id, secret string }

func readIdentities(path string) ([]identity, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("worker: simulated node identities: %w", err)
	}
	defer f.Close()
	var out []identity
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		id, secret, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || id == "" || secret == "" {
			return nil, fmt.Errorf("worker: %s line %d: want \"NODE_ID SECRET\"", path, line)
		}
		out = append(out, identity{id, secret})
	}
	return out, sc.Err()
}

// writeIdentities replaces the file atomically: a crash leaves the old
// identities or the new ones, never half of them.
func writeIdentities(path string, ids []identity) error {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s %s\n", id.id, id.secret)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("worker: write simulated node identities: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("worker: write simulated node identities: %w", err)
	}
	return nil
}
