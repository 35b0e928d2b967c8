package raftstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/hashilog"
)

// Config configures a Raft node.
type Config struct {
	// NodeID is this manager's stable node ID (also its Raft server ID).
	NodeID string
	// DataDir holds raft/raft.db (log and stable store) and raft/snapshots.
	// Empty means in memory: for tests only, nothing survives Shutdown.
	DataDir string
	// BindAddr is the Raft TCP address (host:port). Ignored in memory.
	BindAddr string
	// TLS, when set, carries Raft over mutual TLS: ServerTLS for incoming
	// connections (it must require and check the client's certificate) and
	// ClientTLS for outgoing ones. Unset means plain TCP (tests only).
	ServerTLS, ClientTLS *tls.Config
	// SnapshotThreshold is how many log entries since the last snapshot
	// make a new one due (and compaction): taken once the store is not busy
	// applying, or at twice as many (see paceSnapshots); 0 takes 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks twice the threshold; 0
	// takes 30s. The pacer checks every second, or every SnapshotInterval
	// when that is shorter.
	SnapshotInterval time.Duration
	// Join means this node joins an existing cluster: it starts with no
	// configuration and waits for the leader to add it (never bootstraps).
	// With existing state it just resumes; see Node.Resumed.
	Join bool
	// ForceNewCluster rewrites the Raft configuration of existing state to
	// this node alone, keeping all data: recovery after losing quorum.
	ForceNewCluster bool
	// RequireEmpty refuses a DataDir that already holds Raft state (for
	// restoring a backup into a new cluster).
	RequireEmpty bool
	Logger       *slog.Logger
	// Now stamps object metadata; nil takes time.Now. It runs on the
	// proposer, never inside Apply.
	Now func() time.Time
}

// Node is a manager's Raft member and its replicated store.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	store     *MemoryStore
	transport raft.Transport
	closers   []io.Closer
	leaderCh  chan bool
	fsm       *fsm
	stopPace  chan struct{}
	pacerDone chan struct{}
	stopOnce  sync.Once
	log       *slog.Logger
	metrics   *metrics
	resumed   bool
}

// Resumed reports whether Open found existing Raft state (a restart).
func (n *Node) Resumed() bool { return n.resumed }

// Open starts the Raft node. A DataDir without Raft state bootstraps a new
// single-voter cluster; one with state resumes it (log replayed on top of the
// latest snapshot).
func Open(cfg Config) (*Node, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("raftstore: Config.NodeID is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 8192
	}
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval = 30 * time.Second
	}
	n := &Node{cfg: cfg, store: NewMemoryStore(), leaderCh: make(chan bool, 16), log: cfg.Logger.With("component", "raft"),
		metrics: newMetrics()}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	// LAN timings: a killed leader is replaced, and writes accepted again,
	// in about 1.5 s (make bench-ha: median 1.44 s; target 2 s).
	//
	// The leader steps down when it has not heard from a quorum for the
	// lease, which Raft caps at the heartbeat timeout. A leader busy with
	// thousands of sessions on 2 cores heard its followers 250-540 ms
	// apart: with a 250 ms lease it stepped down again and again, and with
	// 500 ms (heartbeat and lease) still 14 times in one 100,000-task run
	// (make bench-scheduler, 3 managers), each change sending 5,000 workers
	// to reconnect, which loaded the managers more. At 750 ms that run saw
	// no leader change; 1 s also saw none, but failover took 1.9 s.
	rc.HeartbeatTimeout = 750 * time.Millisecond
	rc.ElectionTimeout = 750 * time.Millisecond
	rc.LeaderLeaseTimeout = rc.HeartbeatTimeout
	// Snapshots are taken at the threshold in a quiet moment (see
	// paceSnapshots); Raft's own trigger only bounds the log.
	rc.SnapshotThreshold = raftSnapshotThreshold(cfg.SnapshotThreshold)
	// Keep a threshold's worth of entries after a snapshot: a manager
	// further behind than that catches up from the snapshot. The log holds
	// at most three times the threshold (Raft's own trigger, plus these).
	rc.TrailingLogs = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	// Group commit: proposals that arrive while the leader writes the log
	// queue up (instead of each waiting for the one before to be stored)
	// and are stored and replicated together, one fsync for many. The
	// orchestrator and the scheduler keep several commands in flight to
	// use it.
	rc.BatchApplyCh = true
	rc.NotifyCh = n.leaderCh
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: hashilog.Writer{Logger: n.log}})
	rc.Logger = hlog

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if cfg.DataDir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
		_, n.transport = raft.NewInmemTransport(raft.ServerAddress(cfg.NodeID))
	} else {
		dir := filepath.Join(cfg.DataDir, "raft")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("raftstore: %w", err)
		}
		bolt, err := openBolt(filepath.Join(dir, "raft.db"))
		if err != nil {
			return nil, fmt.Errorf("raftstore: open log store in %s: %w", dir, err)
		}
		n.closers = append(n.closers, bolt)
		cached, err := raft.NewLogCache(512, bolt)
		if err != nil {
			n.closeAll()
			return nil, fmt.Errorf("raftstore: %w", err)
		}
		logs, stable = cached, bolt
		snaps, err = raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "snapshots"), 2, hlog)
		if err != nil {
			n.closeAll()
			return nil, fmt.Errorf("raftstore: open snapshot store: %w", err)
		}
		tr, err := newTransport(cfg, hlog)
		if err != nil {
			n.closeAll()
			return nil, err
		}
		n.transport = tr
		n.closers = append(n.closers, tr)
	}

	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		n.closeAll()
		return nil, fmt.Errorf("raftstore: inspect existing state: %w", err)
	}
	self := raft.Configuration{Servers: []raft.Server{{
		ID: rc.LocalID, Address: n.transport.LocalAddr(), Suffrage: raft.Voter,
	}}}
	switch {
	case cfg.ForceNewCluster && !existing:
		n.closeAll()
		return nil, fmt.Errorf("%w: --force-new-cluster needs a data dir that holds a cluster's state, and %s holds none",
			ErrNoState, cfg.DataDir)
	case cfg.ForceNewCluster:
		// RecoverCluster replays the log into a scratch FSM to take a fresh
		// snapshot; the real FSM is restored from it below.
		if err := raft.RecoverCluster(rc, &fsm{store: NewMemoryStore()}, logs, stable, snaps, n.transport, self); err != nil {
			n.closeAll()
			return nil, fmt.Errorf("raftstore: force new cluster: %w", err)
		}
		n.log.Warn("forced a new one-manager cluster from existing state")
	case existing && cfg.RequireEmpty:
		n.closeAll()
		return nil, fmt.Errorf("%w: restoring a backup needs an empty --data-dir, and %s holds a cluster's state", ErrHasState, cfg.DataDir)
	case !existing && !cfg.Join:
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, n.transport, self); err != nil {
			n.closeAll()
			return nil, fmt.Errorf("raftstore: bootstrap: %w", err)
		}
	}
	n.fsm = &fsm{store: n.store, applied: n.metrics.applied}
	r, err := raft.NewRaft(rc, n.fsm, logs, stable, snaps, n.transport)
	if err != nil {
		n.closeAll()
		return nil, fmt.Errorf("raftstore: start raft: %w", err)
	}
	n.raft = r
	n.resumed = existing
	n.metrics.watchLeaders(r)
	n.stopPace, n.pacerDone = make(chan struct{}), make(chan struct{})
	go n.paceSnapshots(n.stopPace, n.pacerDone)
	return n, nil
}

// newTransport is Raft's network transport: mutual TLS when configured,
// else plain TCP.
func newTransport(cfg Config, hlog hclog.Logger) (*raft.NetworkTransport, error) {
	if cfg.ServerTLS == nil || cfg.ClientTLS == nil {
		tcpAddr, err := net.ResolveTCPAddr("tcp", cfg.BindAddr)
		if err != nil {
			return nil, fmt.Errorf("raftstore: raft address %q: %w", cfg.BindAddr, err)
		}
		tr, err := raft.NewTCPTransportWithLogger(cfg.BindAddr, tcpAddr, 3, 10*time.Second, hlog)
		if err != nil {
			return nil, fmt.Errorf("raftstore: listen for raft on %s: %w", cfg.BindAddr, err)
		}
		return tr, nil
	}
	sl, err := newTLSStreamLayer(cfg.BindAddr, cfg.ServerTLS, cfg.ClientTLS)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: sl, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog,
	}), nil
}

func (n *Node) closeAll() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		_ = n.closers[i].Close()
	}
}

// Store returns the replicated state for reads and watches.
func (n *Node) Store() *MemoryStore { return n.store }

// View runs fn on a consistent snapshot of the local state.
func (n *Node) View(fn func(ReadTx) error) error { return n.store.View(fn) }

// IsLeader reports whether this node is the Raft leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderCh delivers true on gaining and false on losing leadership. It has
// one reader: the manager that starts and stops leader-only controllers.
func (n *Node) LeaderCh() <-chan bool { return n.leaderCh }

// WaitLeader blocks until some node is leader and this node has applied
// every entry it knows of, or ctx ends.
func (n *Node) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := n.raft.LeaderWithID(); addr != "" && n.raft.AppliedIndex() >= n.raft.LastIndex() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("raftstore: waiting for a leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Update runs fn in a write transaction and commits what it recorded as one
// Raft command. It returns once the command is applied on this node. When
// the command fails because an object fn read changed meanwhile, fn runs
// again on fresh state (a few times at most). fn must not have side effects
// beyond the transaction.
func (n *Node) Update(ctx context.Context, fn func(*WriteTx) error) error {
	const attempts = 5
	var err error
	for i := 0; i < attempts; i++ {
		err = n.updateOnce(ctx, fn)
		if !errors.Is(err, errCommitConflict) {
			return err
		}
	}
	return fmt.Errorf("%w (after %d attempts)", ErrSequenceConflict, attempts)
}

// errCommitConflict marks a conflict found by Apply, as opposed to one fn
// itself reported; only the former is retried.
var errCommitConflict = errors.New("raftstore: commit conflict")

func (n *Node) updateOnce(ctx context.Context, fn func(*WriteTx) error) error {
	txn := n.store.scratch()
	now := n.cfg.Now()
	stamp := &minkepb.Meta{CreatedAt: timestamppb.New(now), UpdatedAt: timestamppb.New(now)}
	tx := newWriteTx(txn, func() *minkepb.Meta { return stamp })
	err := fn(tx)
	if err == nil {
		err = tx.deferred.err // a deferred creation the scratch refused
	}
	txn.Abort()
	if err != nil || len(tx.actions) == 0 {
		return err
	}
	err = n.propose(ctx, &minkepb.StoreActions{Actions: tx.actions})
	// An address or subnet taken by a write committed meanwhile is a
	// conflict too: fn, run again, sees it and picks another.
	if errors.Is(err, ErrSequenceConflict) || errors.Is(err, ErrAddressInUse) || errors.Is(err, ErrConflict) {
		return fmt.Errorf("%w: %w", errCommitConflict, err)
	}
	return err
}

func (n *Node) propose(ctx context.Context, cmd *minkepb.StoreActions) error {
	return n.apply(ctx, CommandStoreActions, cmd)
}

// apply commits one command and returns once it is applied here: nil, the
// error Apply gave it (the command changed nothing), or why it may not
// have been committed.
func (n *Node) apply(ctx context.Context, t CommandType, msg proto.Message) error {
	data, err := encodeCommand(t, msg)
	if err != nil {
		return err
	}
	start := time.Now()
	f := n.raft.Apply(data, timeoutOf(ctx))
	if err := n.waitFuture(ctx, f); err != nil {
		return err
	}
	n.metrics.observeCommit(start) // committed and applied, whatever Apply answered
	if resp, ok := f.Response().(error); ok && resp != nil {
		return resp
	}
	return nil
}

// Snapshot forces a snapshot now (and log compaction past it).
func (n *Node) Snapshot() error {
	return n.raft.Snapshot().Error()
}

// Shutdown stops Raft and closes the stores.
func (n *Node) Shutdown() error {
	n.stopOnce.Do(func() { close(n.stopPace) })
	n.metrics.stop(n.raft)
	err := n.raft.Shutdown().Error()
	<-n.pacerDone // a snapshot it waited for has failed with the shutdown
	n.closeAll()
	return err
}

// ViewAndWatch runs fn on a snapshot and subscribes to every change after it.
func (n *Node) ViewAndWatch(fn func(ReadTx) error) (*Subscription, error) {
	return n.store.ViewAndWatch(fn)
}

// LeaderID returns the current leader's node ID and Raft address, or empty
// strings when there is none.
func (n *Node) LeaderID() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// Server is one member of the Raft configuration.
type Server struct {
	ID, Addr string
	Voter    bool
}

// Servers returns the current Raft configuration.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raftstore: configuration: %w", err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddVoter adds a manager to the Raft configuration (leader only).
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	return n.waitFuture(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeoutOf(ctx)))
}

// RemoveServer removes a manager from the Raft configuration (leader only).
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	return n.waitFuture(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, timeoutOf(ctx)))
}

// VerifyLeader confirms with a quorum that this node still leads, so that
// reads served from its state reflect every acknowledged write.
func (n *Node) VerifyLeader(ctx context.Context) error {
	return n.waitFuture(ctx, n.raft.VerifyLeader())
}

// Barrier returns once every entry committed before it is applied here.
func (n *Node) Barrier(ctx context.Context) error {
	return n.waitFuture(ctx, n.raft.Barrier(timeoutOf(ctx)))
}

// Stats reports Raft's counters (for metrics and diagnostics).
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// AppliedIndex is the index of the last entry applied to the store.
func (n *Node) AppliedIndex() uint64 { return n.raft.AppliedIndex() }

func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return 10 * time.Second
}

func (n *Node) waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("raftstore: not confirmed (it may still complete): %w", ctx.Err())
	}
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrStopped
	case err != nil:
		return fmt.Errorf("raftstore: %w", err)
	}
	return nil
}

// Restore replaces the whole replicated state with snap, as one command
// applied on every manager (for restoring a backup into a new cluster).
func (n *Node) Restore(ctx context.Context, snap *minkepb.Snapshot) error {
	return n.apply(ctx, CommandRestore, snap)
}

// Backup returns the current state and the index it reflects.
func (n *Node) Backup() (*minkepb.Snapshot, uint64) {
	return n.store.snapshotAt()
}

// openBolt opens the log store. bbolt panics on some corrupt files (a
// truncated freelist); that becomes an error that says what is wrong,
// leaving the file as it is.
func openBolt(path string) (store *raftboltdb.BoltStore, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s is corrupt (%v); restore it from a backup, or rejoin this manager with an empty --data-dir",
				ErrCorrupt, path, r)
		}
	}()
	if err := checkBoltSize(path); err != nil {
		return nil, err
	}
	return raftboltdb.NewBoltStore(path)
}
