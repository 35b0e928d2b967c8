// Package manager assembles a manager node: the Raft store, the Control API
// on a unix socket, the Dispatcher on --listen-addr, the built-in registry,
// gossip membership, and the leader-only controllers that it starts on
// gaining leadership and stops on losing it.
package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	minkepb "github.com/minke-io/minke/api/minkepb"

	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/controlapi"
	"github.com/minke-io/minke/pkg/dispatcher"
	"github.com/minke-io/minke/pkg/membership"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/registry"
)

// Default ports (see ARCHITECTURE.md).
const (
	DefaultAPIPort      = 4242
	DefaultRaftPort     = 4243
	DefaultGossipPort   = 4244
	DefaultRegistryPort = 4245
	DefaultSocket       = "/run/minke/manager.sock"
)

// Config configures a manager. Empty addresses derive from ListenAddr's host
// and the default ports.
type Config struct {
	DataDir       string
	ListenAddr    string // Dispatcher (worker API), host:port
	RaftAddr      string
	GossipAddr    string
	RegistryAddr  string
	ControlSocket string
	// ControlAddr, if set, serves the Control API on TCP (host:port) to
	// clients with a certificate issued by the cluster (mutual TLS).
	ControlAddr string
	// CertLifetime is the lifetime of node and client certificates of a
	// new cluster (0: ca.DefaultCertLifetime).
	CertLifetime time.Duration
	// JoinAddr, with Token (a manager token), joins an existing cluster
	// through any of its managers instead of starting a new one.
	JoinAddr string
	Token    string
	// ResumeOnly refuses to start without existing state instead of
	// bootstrapping a new cluster (a promoted worker's manager role).
	ResumeOnly bool
	// ForceNewCluster turns the state in DataDir into a one-manager
	// cluster (disaster recovery after losing quorum).
	ForceNewCluster bool
	// Restore is a backup file ('swarmctl cluster backup') to start a new
	// cluster from; DataDir must be empty.
	Restore string
	// SnapshotThreshold and SnapshotInterval tune Raft snapshots and log
	// compaction (0 takes raftstore's defaults).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// MetricsAddr serves Prometheus metrics on /metrics when set.
	MetricsAddr string
	// Hostname overrides the machine's in the node description.
	Hostname string
	// Gossip tunes failure detection.
	Gossip membership.Tuning
	// WorkerRestartGrace is how long a node that announced a planned
	// restart is held READY with its tasks (see
	// dispatcher.AnnounceRestart); 0 is the default (30s), below 0 none.
	WorkerRestartGrace time.Duration
	// RegistryConfig is a docker config.json (or its directory) with the
	// credentials used to resolve service images to digests; "" uses
	// $DOCKER_CONFIG or $HOME/.docker/config.json.
	RegistryConfig string
	// InsecureRegistries (host:port) are reached over plain HTTP when
	// resolving images; loopback and RFC 1918 addresses always are.
	InsecureRegistries []string
	Logger             *slog.Logger
}

// Manager is a running manager node.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	nodeID string
	// metrics is what --metrics-addr serves (see MetricsRegistry).
	metricsOnce sync.Once
	metrics     *prometheus.Registry
	secret      string // this node's identity secret, for its own worker role
	raft        *raftstore.Node
	// raftOpened is closed once raft is set: the Raft transport's TLS
	// check runs on connections that arrive while raftstore.Open is still
	// running, and waits for it.
	raftOpened chan struct{}
	registry   *registry.Registry
	members    *membership.Membership
	disp       *dispatcher.Dispatcher

	missCache      missCache // images no manager had, recently
	registryClient           // to the other managers' registries
	// verified spares calls on one connection re-checking its chain's
	// signatures (see ca.VerifyCache).
	verified ca.VerifyCache

	connMu sync.Mutex
	conns  map[string]*grpc.ClientConn // to other managers, by API address

	id        *ca.Identity
	renewer   *ca.Renewer
	newRoot   *ca.RootCA               // the CA this manager created (new or restored cluster)
	selfCert  *minkepb.NodeCertificate // and the certificate it issued itself
	clusterID string
	runCtx    context.Context
	bg        sync.WaitGroup // background work started by calls (adding voters)

	dispLis, ctlLis, regLis, ctlTCPLis net.Listener
	ready                              chan struct{}
}

// withDefaults fills in derived addresses.
func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("manager: --data-dir is required")
	}
	if c.ListenAddr == "" {
		c.ListenAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(DefaultAPIPort))
	}
	host, _, err := net.SplitHostPort(c.ListenAddr)
	if err != nil {
		return c, fmt.Errorf("manager: invalid --listen-addr %q: want HOST:PORT", c.ListenAddr)
	}
	def := func(v *string, port int) {
		if *v == "" {
			*v = net.JoinHostPort(host, strconv.Itoa(port))
		}
	}
	def(&c.RaftAddr, DefaultRaftPort)
	def(&c.GossipAddr, DefaultGossipPort)
	def(&c.RegistryAddr, DefaultRegistryPort)
	if c.ControlSocket == "" {
		c.ControlSocket = DefaultSocket
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// New opens the data directory and binds every listener, so that address
// errors show before anything runs. Run starts serving.
func New(cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("manager: data dir: %w", err)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "manager"), ready: make(chan struct{}), raftOpened: make(chan struct{})}
	if m.nodeID, err = loadOrCreate(filepath.Join(cfg.DataDir, "node-id"), raftstore.NewID); err != nil {
		return nil, err
	}
	if m.secret, err = loadOrCreate(filepath.Join(cfg.DataDir, "node-secret"), dispatcher.NewSecret); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.closeListeners()
		}
	}()
	if m.dispLis, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
		return nil, fmt.Errorf("manager: --listen-addr: %w", err)
	}
	if m.regLis, err = net.Listen("tcp", cfg.RegistryAddr); err != nil {
		return nil, fmt.Errorf("manager: --registry-addr: %w", err)
	}
	if m.ctlLis, err = listenUnix(cfg.ControlSocket); err != nil {
		return nil, err
	}
	if cfg.ControlAddr != "" {
		if m.ctlTCPLis, err = net.Listen("tcp", cfg.ControlAddr); err != nil {
			return nil, fmt.Errorf("manager: --control-addr: %w", err)
		}
	}
	if cfg.CertLifetime != 0 {
		if err := ca.ValidateLifetime(cfg.CertLifetime); err != nil {
			return nil, fmt.Errorf("manager: --cert-lifetime: %w", err)
		}
	}
	if m.id, err = ca.LoadIdentity(filepath.Join(cfg.DataDir, "certs")); err != nil {
		return nil, err
	}
	if m.registry, err = registry.New(filepath.Join(cfg.DataDir, "registry"), cfg.Logger); err != nil {
		return nil, err
	}
	ok = true
	return m, nil
}

// NodeID is this manager's node ID.
func (m *Manager) NodeID() string { return m.nodeID }

// NodeSecret is this manager's node identity secret (for its worker role).
func (m *Manager) NodeSecret() string { return m.secret }

// Ready is closed once the manager serves requests.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// Store gives in-process users (the embedded worker) read access.
func (m *Manager) Store() *raftstore.Node { return m.raft }

// Identity is this manager's certificate and trusted roots (its worker
// role uses them too).
func (m *Manager) Identity() *ca.Identity { return m.id }

// ControlAddr is the TCP Control API address, or "".
func (m *Manager) ControlAddr() string {
	if m.ctlTCPLis == nil {
		return ""
	}
	return m.ctlTCPLis.Addr().String()
}

// DispatcherAddr is the address workers dial.
func (m *Manager) DispatcherAddr() string { return m.dispLis.Addr().String() }

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("manager: control socket dir: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("manager: control socket %s is in use: another manager is running", path)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("manager: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("manager: control socket: %w", err)
	}
	return l, nil
}

func (m *Manager) closeListeners() {
	for _, l := range []net.Listener{m.dispLis, m.regLis, m.ctlLis, m.ctlTCPLis} {
		if l != nil {
			l.Close()
		}
	}
}

// ErrDemoted: this manager was removed from Raft (demoted or removed).
var ErrDemoted = errors.New("manager: this node is no longer a manager (demoted or removed from the cluster)")

// Run serves until ctx ends, then shuts everything down in order and
// returns.
func (m *Manager) Run(ctx context.Context) error {
	defer m.closeListeners()
	var restore *minkepb.Snapshot
	if m.cfg.Restore != "" {
		var err error
		if restore, err = readBackup(m.cfg.Restore); err != nil {
			return err
		}
	}
	var err error
	m.runCtx = ctx
	defer m.bg.Wait()
	raftLog := m.cfg.Logger.With("component", "raft")
	m.raft, err = raftstore.Open(raftstore.Config{
		NodeID: m.nodeID, DataDir: m.cfg.DataDir, BindAddr: m.cfg.RaftAddr, Logger: m.cfg.Logger,
		ServerTLS: m.id.MutualServerTLS(ca.RoleManager, m.authorizeRaftPeer, func(err error) {
			raftLog.Warn("refused a raft connection", "err", err)
		}),
		ClientTLS: m.id.ClientTLS(ca.RoleManager),
		Join:      m.cfg.JoinAddr != "" || m.cfg.ResumeOnly, ForceNewCluster: m.cfg.ForceNewCluster,
		RequireEmpty: restore != nil, SnapshotThreshold: m.cfg.SnapshotThreshold, SnapshotInterval: m.cfg.SnapshotInterval,
	})
	if err != nil {
		return err
	}
	close(m.raftOpened)
	defer func() {
		if err := m.raft.Shutdown(); err != nil {
			m.log.Warn("raft shutdown", "err", err)
		}
	}()
	if err := m.startRaft(ctx, restore); err != nil {
		return err
	}
	if err := m.ensureCert(ctx); err != nil {
		return err
	}
	m.renewer = ca.NewRenewer(m.id, m.renewCert, m.cfg.Logger)
	m.id.OnChange(m.retireConns)

	var key []byte
	_ = m.raft.View(func(tx raftstore.ReadTx) error { key = tx.Cluster().GetGossipKey(); return nil })
	gh, gp, err := splitHostPort(m.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("manager: --gossip-addr: %w", err)
	}
	mcfg := membership.Config{
		NodeID: m.nodeID, BindAddr: gh, BindPort: gp, Key: key, Logger: m.cfg.Logger,
		Meta: membership.Meta{Role: membership.RoleManager, APIAddr: m.DispatcherAddr()},
	}
	m.cfg.Gossip.Apply(&mcfg)
	m.members, err = membership.New(mcfg)
	if err != nil {
		return err
	}
	defer func() { _ = m.members.Shutdown() }()
	if peers := m.gossipPeers(); len(peers) > 0 {
		if _, err := m.members.Join(peers); err != nil {
			m.log.Warn("could not reach other managers by gossip yet", "err", err)
		}
	}
	if err := m.recordSelf(ctx); err != nil {
		m.log.Warn("recording this manager's addresses", "err", err)
	}

	m.registry.OnTag(m.replicatePush)
	m.disp = dispatcher.New(dispatcher.Config{
		Store:        m.raft,
		GossipPeers:  m.gossipPeers,
		RegistryAddr: m.regLis.Addr().String(),
		CheckManager: m.checkManager,
		AddManager:   m.addManager,
		IsLeader:     m.raft.IsLeader,
		Gossiping:    m.inGossip,
		Logger:       m.cfg.Logger,

		RestartGracePeriod: m.cfg.WorkerRestartGrace,
	})
	var ctlTCPSrv *grpc.Server
	if m.ctlTCPLis != nil {
		ctlTCPSrv = grpc.NewServer(append(append(serverLimits(), tlsServerBuffers()...), grpc.Creds(credentials.NewTLS(m.id.ServerTLS(true))),
			grpc.ChainUnaryInterceptor(m.authUnary(listenerControl)), grpc.ChainStreamInterceptor(m.authStream(listenerControl)))...)
	}
	ctl, err := m.newPinningControl(controlapi.NewForwarder(controlapi.New(controlapi.Config{
		Store: m.raft, Logs: m.disp.Logs, Cluster: m, RegistryAddr: m.regLis.Addr().String(), Logger: m.cfg.Logger,
	}), m))
	if err != nil {
		return err
	}

	dispSrv := grpc.NewServer(append(append(append(serverLimits(), tlsServerBuffers()...), dispatcher.ServerOptions()...), grpc.Creds(credentials.NewTLS(m.id.ServerTLS(false))),
		grpc.ChainUnaryInterceptor(m.authUnary(listenerWorkerAPI)), grpc.ChainStreamInterceptor(m.authStream(listenerWorkerAPI)),
		// Keepalives find workers and managers that vanished without
		// closing their connections (a frozen or powered-off host).
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}))...)
	m.disp.Register(dispSrv)
	ctl.Register(dispSrv) // for other managers' forwarded calls (manager certificate required)
	ctlSrv := grpc.NewServer(serverLimits()...)
	ctl.Register(ctlSrv)
	if ctlTCPSrv != nil {
		ctl.Register(ctlTCPSrv)
	}
	regSrv := m.newRegistryServer()

	var msrv *metricsServer
	if m.cfg.MetricsAddr != "" {
		if msrv, err = m.metricsServer(); err != nil {
			return err
		}
	}

	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	demoted := make(chan struct{})
	goRun := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				m.log.Error("component stopped", "name", name, "err", err)
			}
		}()
	}
	goRun("dispatcher status", func() error { m.disp.Run(runCtx); return nil })
	goRun("leadership", func() error { m.runLeadership(runCtx); return nil })
	goRun("membership watch", func() error { m.watchMembership(runCtx, demoted); return nil })
	goRun("gossip keys", func() error { m.followGossipKeys(runCtx); return nil })
	goRun("dispatcher server", func() error { return dispSrv.Serve(m.dispLis) })
	goRun("control server", func() error { return ctlSrv.Serve(m.ctlLis) })
	goRun("tls", func() error { m.runTLS(runCtx); return nil })
	if ctlTCPSrv != nil {
		goRun("control TCP server", func() error { return ctlTCPSrv.Serve(m.ctlTCPLis) })
	}
	goRun("registry server", func() error { return regSrv.ServeTLS(m.regLis, "", "") })
	if msrv != nil {
		goRun("metrics server", func() error { return msrv.Serve() })
	}
	m.log.Info("manager ready", "node_id", m.nodeID, "listen_addr", m.DispatcherAddr(),
		"control_socket", m.cfg.ControlSocket, "control_addr", m.ControlAddr(), "ca_fingerprint", m.caFingerprint(), "registry_addr", m.regLis.Addr().String(), "gossip_addr", m.members.LocalAddr())
	close(m.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case <-demoted:
		runErr = ErrDemoted
	}
	m.log.Info("manager shutting down")
	stop()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = regSrv.Shutdown(shutCtx)
	if msrv != nil {
		_ = msrv.Close()
	}
	gracefulStop(dispSrv, 2*time.Second)
	gracefulStop(ctlSrv, 2*time.Second)
	if ctlTCPSrv != nil {
		gracefulStop(ctlTCPSrv, 2*time.Second)
	}
	wg.Wait()
	m.closeConns()
	_ = m.members.Leave(time.Second)
	return runErr
}

// gracefulStop lets calls finish, but not streams that never end.
func gracefulStop(s *grpc.Server, d time.Duration) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		s.Stop()
		<-done
	}
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number", p)
	}
	return h, port, nil
}

// loadOrCreate reads a one-line value from path, or makes one and saves it.
func loadOrCreate(path string, gen func() string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("manager: %w", err)
	}
	v := gen()
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("manager: %w", err)
	}
	return v, nil
}
