// Package membership wraps hashicorp/memberlist: it tells every node, manager
// or worker, which nodes are alive and where, using SWIM gossip.
//
// A node's memberlist name is its minke node ID, and its memberlist meta
// carries its Meta (role and API address). Membership changes arrive on
// Events; the leader turns them into Raft-committed node status.
package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Errors returned by this package. Wrapped errors carry the details; test
// with errors.Is.
var (
	// ErrInvalidConfig: a Config field is missing or out of range.
	ErrInvalidConfig = errors.New("membership: invalid config")
	// ErrMetaTooLarge: the encoded Meta exceeds memberlist's 512-byte limit.
	ErrMetaTooLarge = errors.New("membership: node meta too large")
	// ErrBadMeta: a peer's meta could not be decoded.
	ErrBadMeta = errors.New("membership: undecodable node meta")
	// ErrJoinFailed: no peer could be contacted; usually a wrong gossip key
	// or unreachable peers.
	ErrJoinFailed = errors.New("membership: join failed")
	// ErrShutdown: the Membership has been shut down.
	ErrShutdown = errors.New("membership: shut down")
)

// Failure-detection defaults, tuned for a LAN so a dead node is declared
// dead in about a second (memberlist's LAN defaults take ~5 s or more):
//
//   - every node probes one peer each ProbeInterval (200 ms), waiting
//     ProbeTimeout (100 ms) for the ack before asking IndirectChecks (3)
//     peers to probe it too, and falling back to a TCP ping;
//   - a node that fails a probe is suspected for SuspicionMult ×
//     ProbeInterval × max(1, log10(N)) = 400 ms (up to
//     SuspicionMaxTimeoutMult = 3 times that, shortened as other members
//     confirm the suspicion) before it is declared dead;
//   - suspicion and death spread by gossip every GossipInterval (100 ms).
//
// With few nodes a crash is noticed in roughly 0.5–1.5 s. The price is more
// probe traffic (five probes a second per node, a few hundred bytes each),
// which is negligible on a LAN. Over a WAN, raise all of them.
const (
	DefaultProbeInterval           = 200 * time.Millisecond
	DefaultProbeTimeout            = 100 * time.Millisecond
	DefaultSuspicionMult           = 2
	DefaultSuspicionMaxTimeoutMult = 3
	DefaultGossipInterval          = 100 * time.Millisecond
	DefaultPushPullInterval        = 15 * time.Second
	DefaultTCPTimeout              = 5 * time.Second
	DefaultEventBuffer             = 1024
)

// Tuning is the failure-detection settings operators may change (zero
// values take the defaults above).
type Tuning struct {
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	SuspicionMult int
}

// Apply copies the non-zero settings into c.
func (t Tuning) Apply(c *Config) {
	if t.ProbeInterval > 0 {
		c.ProbeInterval = t.ProbeInterval
	}
	if t.ProbeTimeout > 0 {
		c.ProbeTimeout = t.ProbeTimeout
	}
	if t.SuspicionMult > 0 {
		c.SuspicionMult = t.SuspicionMult
	}
}

// Config configures a Membership.
type Config struct {
	// NodeID is the minke node ID, used as the memberlist node name.
	NodeID string
	// BindAddr is the IP to bind (UDP and TCP); empty means 0.0.0.0.
	BindAddr string
	// BindPort is the port to bind; 0 picks a free port (see LocalAddr).
	BindPort int
	// AdvertiseAddr is the IP other nodes should use to reach this one,
	// with the bound port; empty means the bind address, or a private IP of
	// this host when binding 0.0.0.0.
	AdvertiseAddr string
	// Key is the gossip encryption key (16, 24 or 32 bytes), or nil for
	// none. All members must share it.
	Key []byte
	// Meta is advertised to the other members.
	Meta Meta
	// Logger receives memberlist's logs with component=membership; nil
	// means slog.Default().
	Logger *slog.Logger

	// Failure-detection tuning; zero values take the Default* constants.
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	GossipInterval          time.Duration
	PushPullInterval        time.Duration
	// TCPTimeout bounds a join's push/pull exchange with one peer.
	TCPTimeout time.Duration

	// EventBuffer is the capacity of the Events channel; zero means
	// DefaultEventBuffer. When it is full the oldest event is dropped.
	EventBuffer int
}

// Member is one alive node.
type Member struct {
	NodeID string
	// Addr is the member's gossip address, host:port.
	Addr string
	Meta Meta
}

// Membership is this node's view of the cluster. It is safe for concurrent
// use.
type Membership struct {
	logger *slog.Logger
	ml     *memberlist.Memberlist
	events *eventQueue
	nodeID string

	// keyring is memberlist's, nil without encryption. Changes go through
	// SetKeys, which advertises them in the meta.
	keyring *memberlist.Keyring

	metaMu sync.RWMutex
	base   Meta   // what the caller advertises; Keys is filled from keyring
	meta   []byte // base + keyring fingerprints, encoded

	// changed is closed and replaced whenever a member joins, leaves or
	// updates (see Changed).
	changedMu sync.Mutex
	changed   chan struct{}

	// members mirrors memberlist's alive members, maintained from its event
	// callbacks. memberlist.Members() hands out pointers that memberlist
	// later mutates without a lock we can take, so reading them races;
	// the callbacks run under memberlist's node lock, so copying there is
	// safe.
	membersMu sync.RWMutex
	members   map[string]Member
	localAddr string

	// stateMu orders Leave, UpdateMeta and Shutdown: memberlist panics on
	// Leave after Shutdown.
	stateMu  sync.Mutex
	shutdown bool
}

// New validates cfg, starts memberlist bound to cfg.BindAddr:BindPort and
// returns once it is listening. The local node is a cluster of one until
// Join is called; its own Join event is the first on Events.
func New(cfg Config) (*Membership, error) {
	if cfg.NodeID == "" {
		return nil, fmt.Errorf("%w: NodeID is required", ErrInvalidConfig)
	}
	if cfg.BindPort < 0 || cfg.BindPort > 65535 {
		return nil, fmt.Errorf("%w: BindPort %d, want 0 (any) to 65535", ErrInvalidConfig, cfg.BindPort)
	}
	if cfg.Key != nil {
		if err := memberlist.ValidateKey(cfg.Key); err != nil {
			return nil, fmt.Errorf("%w: Key is %d bytes, want 16, 24 or 32", ErrInvalidConfig, len(cfg.Key))
		}
	}
	if err := cfg.Meta.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "membership")

	m := &Membership{
		logger:  logger,
		events:  newEventQueue(withDefault(cfg.EventBuffer, DefaultEventBuffer)),
		nodeID:  cfg.NodeID,
		base:    cfg.Meta,
		members: make(map[string]Member),
		changed: make(chan struct{}),
	}
	if cfg.Key != nil {
		kr, err := memberlist.NewKeyring(nil, append([]byte(nil), cfg.Key...))
		if err != nil {
			return nil, fmt.Errorf("%w: Key: %w", ErrInvalidConfig, err)
		}
		m.keyring = kr
	}
	m.meta = m.encodeLocked()
	mc, err := m.memberlistConfig(cfg)
	if err != nil {
		return nil, err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: start memberlist on %s: %w",
			net.JoinHostPort(mc.BindAddr, strconv.Itoa(cfg.BindPort)), err)
	}
	m.ml = ml
	logger.Info("membership started", "node_id", cfg.NodeID, "addr", m.LocalAddr(), "role", cfg.Meta.Role)
	return m, nil
}

func (m *Membership) memberlistConfig(cfg Config) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeID
	mc.BindAddr = cfg.BindAddr
	if mc.BindAddr == "" {
		mc.BindAddr = "0.0.0.0"
	}
	mc.BindPort = cfg.BindPort
	mc.AdvertisePort = cfg.BindPort
	if cfg.AdvertiseAddr != "" {
		if net.ParseIP(cfg.AdvertiseAddr) == nil {
			return nil, fmt.Errorf("%w: AdvertiseAddr %q, want an IP address (the bound port is advertised)",
				ErrInvalidConfig, cfg.AdvertiseAddr)
		}
		mc.AdvertiseAddr = cfg.AdvertiseAddr
	}
	// Encryption is on exactly when there is a keyring; memberlist then
	// refuses unencrypted and undecryptable packets (GossipVerifyIncoming).
	mc.Keyring = m.keyring
	mc.ProbeInterval = withDefault(cfg.ProbeInterval, DefaultProbeInterval)
	mc.ProbeTimeout = withDefault(cfg.ProbeTimeout, DefaultProbeTimeout)
	mc.SuspicionMult = withDefault(cfg.SuspicionMult, DefaultSuspicionMult)
	mc.SuspicionMaxTimeoutMult = withDefault(cfg.SuspicionMaxTimeoutMult, DefaultSuspicionMaxTimeoutMult)
	mc.GossipInterval = withDefault(cfg.GossipInterval, DefaultGossipInterval)
	mc.PushPullInterval = withDefault(cfg.PushPullInterval, DefaultPushPullInterval)
	mc.TCPTimeout = withDefault(cfg.TCPTimeout, DefaultTCPTimeout)
	// A restarted node keeps its ID but may come back on another address;
	// let it reclaim its name once the old incarnation has been dead a while.
	mc.DeadNodeReclaimTime = 10 * time.Second
	mc.Delegate = delegate{m: m}
	mc.Events = delegate{m: m}
	mc.Logger = newStdLogger(m.logger)
	return mc, nil
}

func withDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Join contacts the given peers (host:port) and merges their view of the
// cluster into ours. It returns how many peers were contacted; it fails with
// ErrJoinFailed only if none could be, which with reachable peers almost
// always means a different gossip key.
// Rejoin contacts the peers (host:port) that are not alive members now.
// memberlist never probes a node it declared dead again, so after a
// partition heals both sides must be introduced anew; call Rejoin
// periodically with the addresses that should be members.
func (m *Membership) Rejoin(peers []string) (int, error) {
	alive := map[string]bool{m.LocalAddr(): true}
	for _, mem := range m.Members() {
		alive[mem.Addr] = true
	}
	var missing []string
	for _, p := range peers {
		if !alive[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return 0, nil
	}
	return m.Join(missing)
}

func (m *Membership) Join(peers []string) (int, error) {
	if m.isShutdown() {
		return 0, ErrShutdown
	}
	if len(peers) == 0 {
		return 0, nil
	}
	n, err := m.ml.Join(peers)
	if n == 0 {
		if err == nil {
			err = errors.New("no peer answered")
		}
		return 0, fmt.Errorf("%w: contacted none of %d peers (%s); check that they are reachable and share this node's gossip key: %w",
			ErrJoinFailed, len(peers), strings.Join(peers, ", "), flatten(err))
	}
	m.logger.Info("joined cluster", "node_id", m.nodeID, "peers_contacted", n, "peers", len(peers))
	return n, nil
}

// Events returns the channel of membership changes. It is buffered
// (Config.EventBuffer) and memberlist never waits on it: when it is full the
// oldest event is dropped and a warning logged, so a slow consumer should
// reconcile with Members() rather than trust a complete history. The
// channel is closed by Shutdown. Events about the local node are included.
func (m *Membership) Events() <-chan Event {
	return m.events.ch
}

// Members returns the alive (and suspected, not yet dead) members,
// including the local node, sorted by node ID.
func (m *Membership) Members() []Member {
	m.membersMu.RLock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		out = append(out, mem)
	}
	m.membersMu.RUnlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}

// LocalAddr returns the host:port other members reach this node at: the
// advertised IP (the bind IP by default) with the port actually bound.
func (m *Membership) LocalAddr() string {
	m.membersMu.RLock()
	defer m.membersMu.RUnlock()
	return m.localAddr
}

// UpdateMeta changes the meta advertised to other members and waits up to
// timeout for the change to be broadcast.
func (m *Membership) UpdateMeta(meta Meta, timeout time.Duration) error {
	if err := meta.validate(); err != nil {
		return err
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if m.shutdown {
		return ErrShutdown
	}
	m.metaMu.Lock()
	m.base = meta
	m.meta = m.encodeLocked()
	m.metaMu.Unlock()
	if err := m.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("membership: broadcast meta update: %w", err)
	}
	return nil
}

// Leave announces that this node is leaving and waits up to timeout for the
// announcement to reach another member, so peers see a Leave event at once
// instead of detecting a failure. The node keeps answering gossip until
// Shutdown; call Shutdown afterwards.
func (m *Membership) Leave(timeout time.Duration) error {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if m.shutdown {
		return ErrShutdown
	}
	if err := m.ml.Leave(timeout); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	m.logger.Info("left cluster", "node_id", m.nodeID)
	return nil
}

// Shutdown stops memberlist's listeners and goroutines, then closes the
// Events channel. Without a prior Leave, peers detect this node as dead.
// It is safe to call more than once.
func (m *Membership) Shutdown() error {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if m.shutdown {
		return nil
	}
	m.shutdown = true
	err := m.ml.Shutdown()
	m.events.close()
	if err != nil {
		return fmt.Errorf("membership: shutdown: %w", err)
	}
	m.logger.Info("membership stopped", "node_id", m.nodeID)
	return nil
}

// joinErrors flattens memberlist's multi-line multierror into one line
// while keeping every cause reachable through errors.Is/As.
type joinErrors []error

func (e joinErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e joinErrors) Unwrap() []error { return e }

func flatten(err error) error {
	if me, ok := err.(interface{ WrappedErrors() []error }); ok && len(me.WrappedErrors()) > 0 {
		return joinErrors(me.WrappedErrors())
	}
	return err
}

func (m *Membership) isShutdown() bool {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	return m.shutdown
}

// encodeLocked encodes the caller's meta with the keyring's fingerprints.
// validate() has checked the caller's part, and fingerprints are short, so
// encoding cannot fail or outgrow the limit in practice; NodeMeta guards
// the limit anyway. The caller holds metaMu (or has not shared m yet).
func (m *Membership) encodeLocked() []byte {
	meta := m.base
	meta.Keys = m.Keys()
	b, err := encodeMeta(meta)
	if err != nil {
		m.logger.Error("encoding node meta", "err", err)
	}
	return b
}

// Changed returns a channel that is closed at the next membership change
// (a member joining, leaving, or updating its meta). Take a new one after
// each change: it is a signal to re-read Members(), not a queue.
func (m *Membership) Changed() <-chan struct{} {
	m.changedMu.Lock()
	defer m.changedMu.Unlock()
	return m.changed
}

func (m *Membership) encodedMeta() []byte {
	m.metaMu.RLock()
	defer m.metaMu.RUnlock()
	return m.meta
}

// decode returns a member's Meta, logging (not failing) on garbage so one
// bad peer cannot hide the others.
func (m *Membership) decode(n *memberlist.Node) Meta {
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		m.logger.Warn("ignoring undecodable node meta", "node_id", n.Name, "err", err)
	}
	return meta
}

// emit turns a memberlist callback into an Event and updates the member
// table. It runs under memberlist's node lock, so n is safe to read here
// and only here.
func (m *Membership) emit(kind EventKind, n *memberlist.Node) {
	ev := Event{Kind: kind, NodeID: n.Name, Addr: n.Address(), Meta: m.decode(n)}
	m.membersMu.Lock()
	if kind == Leave {
		delete(m.members, ev.NodeID)
	} else {
		m.members[ev.NodeID] = Member{NodeID: ev.NodeID, Addr: ev.Addr, Meta: ev.Meta}
		if ev.NodeID == m.nodeID {
			m.localAddr = ev.Addr
		}
	}
	m.membersMu.Unlock()
	m.changedMu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.changedMu.Unlock()
	attrs := []any{"node_id", ev.NodeID, "addr", ev.Addr, "role", ev.Meta.Role}
	if kind == Leave {
		attrs = append(attrs, "state", nodeStateName(n.State))
	}
	m.logger.Info("member "+kind.String(), attrs...)
	if m.events.push(ev) {
		m.logger.Warn("events channel full; dropped oldest event", "node_id", ev.NodeID)
	}
}

func nodeStateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	default:
		return "unknown"
	}
}
