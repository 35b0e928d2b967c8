package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/membership"
	"github.com/minke-io/minke/pkg/runtime"
)

// WorkerConfig is everything a worker process needs.
type WorkerConfig struct {
	DataDir        string
	DispatcherAddr string
	Token          string
	// NodeID and NodeSecret are set by a manager running the worker role
	// for itself; standalone workers keep theirs in DataDir/node-id and
	// DataDir/node-secret.
	NodeID     string
	NodeSecret string
	// Addr is the IP other nodes reach this node on.
	Addr        string
	Description *minkepb.NodeDescription
	// GossipPort is the memberlist port; -1 means this process gossips
	// already (a manager with --worker).
	GossipPort   int
	CgroupParent string
	// ContainerSubnet is the node's container subnet (CIDR); "" is
	// network.DefaultSubnet of Addr, NoNetwork turns networking off.
	ContainerSubnet string
	// Bridge names the node's bridge and nftables table; "" is
	// "minke-" and the start of the node ID.
	Bridge string
	// LogMaxSize and LogMaxFiles rotate container logs (see runtime.Config).
	LogMaxSize  int64
	LogMaxFiles int
	Logger      *slog.Logger
	// Promote runs the manager role when the operator promotes this node
	// (see Config.Promote), gossiping on the worker's gossip address; nil
	// ignores promotion.
	Promote func(ctx context.Context, token, joinAddr string) error
	// ResumeManager starts the manager role at once (the node was promoted
	// before this process started), with an empty token and join address.
	ResumeManager bool
	// Gossip tunes failure detection.
	Gossip membership.Tuning
	// Identity, set by a manager running the worker role for itself, is
	// the manager's certificate (which the manager renews); standalone
	// workers keep theirs in DataDir/certs and renew it themselves.
	Identity *ca.Identity
	// Ready, if set, is called once the session loop runs.
	Ready func(nodeID string)
	// Images configures pulls and image garbage collection.
	Images ImageConfig
	// MetricsAddr serves Prometheus metrics (per-task CPU, memory, pids,
	// OOM kills) on HOST:PORT/metrics; "" serves none. With
	// MetricsBestEffort an address already in use is logged, not fatal
	// (for the default address, which several workers on one host share).
	MetricsAddr       string
	MetricsBestEffort bool
	// Metrics, if set, gets the per-task collector instead of a server on
	// MetricsAddr: a manager's worker role reports through the manager's
	// --metrics-addr.
	Metrics prometheus.Registerer
	// AnnounceRestart, when the worker stops because ctx ended (SIGTERM),
	// tells the leader the node will be back (see Agent.announceRestart),
	// before it leaves gossip.
	AnnounceRestart bool
}

// RunWorker joins the cluster, re-adopts containers left by an earlier
// worker process of this node, joins gossip, and runs the agent until ctx ends.
func RunWorker(ctx context.Context, cfg WorkerConfig) error {
	if cfg.DataDir == "" {
		return errors.New("worker: --data-dir is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("worker: data dir: %w", err)
	}
	idFile, secretFile := filepath.Join(cfg.DataDir, "node-id"), filepath.Join(cfg.DataDir, "node-secret")
	if cfg.NodeID == "" {
		cfg.NodeID = readTrimmed(idFile)
	}
	if cfg.NodeSecret == "" {
		cfg.NodeSecret = readTrimmed(secretFile)
	}
	subnet, err := resolveSubnet(cfg.ContainerSubnet, cfg.Addr)
	if err != nil {
		return err
	}
	if cfg.Description != nil {
		cfg.Description = proto.Clone(cfg.Description).(*minkepb.NodeDescription)
		cfg.Description.Worker = true
		if subnet.IsValid() {
			cfg.Description.ContainerSubnet = subnet.String()
		}
	}
	id, renew := cfg.Identity, false
	if id == nil {
		var err error
		if id, err = ca.LoadIdentity(filepath.Join(cfg.DataDir, "certs")); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		renew = true
	}
	a, err := New(Config{
		DispatcherAddr: cfg.DispatcherAddr, Token: cfg.Token, NodeID: cfg.NodeID, NodeSecret: cfg.NodeSecret, Description: cfg.Description,
		Addr: cfg.Addr, GossipPort: uint32(max(cfg.GossipPort, 0)), Logger: cfg.Logger, Promote: cfg.Promote,
		Identity: id, Renew: renew,
	})
	if err != nil {
		return err
	}
	defer a.Close()
	jctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	resp, err := a.Join(jctx)
	cancel()
	if err != nil {
		return err
	}
	if cfg.NodeID != resp.GetNodeId() || cfg.NodeSecret != a.Secret() {
		// The secret first: an ID without its secret cannot rejoin.
		if err := os.WriteFile(secretFile, []byte(a.Secret()+"\n"), 0o600); err != nil {
			return fmt.Errorf("worker: write node secret: %w", err)
		}
		if err := os.WriteFile(idFile, []byte(resp.GetNodeId()+"\n"), 0o600); err != nil {
			return fmt.Errorf("worker: write node id: %w", err)
		}
	}
	// Each node's containers live under a cgroup of its own, so that several
	// workers on one machine never sweep each other's containers.
	parent := cfg.CgroupParent
	if parent == "" {
		parent = "minke"
	}
	rt, err := runtime.New(runtime.Config{Root: filepath.Join(cfg.DataDir, "runtime"),
		CgroupParent: parent + "/" + resp.GetNodeId(), Logger: cfg.Logger,
		RegistryConfig: cfg.Images.RegistryConfig, MaxLayerFileSize: cfg.Images.MaxLayerFileSize,
		LogMaxSize: cfg.LogMaxSize, LogMaxFiles: cfg.LogMaxFiles,
		InsecureRegistries: cfg.Images.InsecureRegistries})
	if err != nil {
		return err
	}
	// Containers of an earlier worker process keep running under their
	// shims; take them over, and clean what is truly dead.
	adopted, err := rt.Adopt(ctx)
	if err != nil {
		return fmt.Errorf("worker: adopting containers of the previous worker process: %w", err)
	}
	defer rt.Close() // containers stay with their shims; this only waits for file deletions
	a.adopted = make(map[string]*runtime.Container, len(adopted))
	for _, c := range adopted {
		a.adopted[c.ID()] = c
	}
	// Image GC starts after adoption, so that it sees the adopted
	// containers' images as in use.
	gcCtx, stopGC := context.WithCancel(ctx)
	gcDone := make(chan struct{})
	go func() { defer close(gcDone); rt.RunImageGC(gcCtx, cfg.Images.GC) }()
	defer func() { stopGC(); <-gcDone }()
	a.rt = RuntimeExecutor{rt}
	keep := make(map[string]bool, len(a.adopted))
	for id := range a.adopted {
		keep[id] = true
	}
	if a.net, err = startNetwork(subnet, cfg.Bridge, resp.GetNodeId(), cfg.Addr, cfg.DataDir, keep, cfg.Logger); err != nil {
		return err
	}
	defer a.net.stop()
	if cfg.Metrics != nil {
		tc := newTaskCollector(a)
		if err := cfg.Metrics.Register(tc); err != nil {
			return fmt.Errorf("worker: registering task metrics: %w", err)
		}
		defer cfg.Metrics.Unregister(tc)
	} else if cfg.MetricsAddr != "" {
		ms, err := newMetricsServer(a, cfg.MetricsAddr)
		switch {
		case err != nil && cfg.MetricsBestEffort:
			cfg.Logger.Warn("serving no metrics", "component", "agent", "err", err)
		case err != nil:
			return err
		default:
			cfg.Logger.Info("serving metrics", "component", "agent", "addr", ms.Addr())
			done := make(chan struct{})
			go func() { defer close(done); ms.serve() }()
			defer func() { ms.close(); <-done }()
		}
	}
	if cfg.GossipPort >= 0 {
		g := &gossip{cfg: membership.Config{
			NodeID: resp.GetNodeId(), BindAddr: cfg.Addr, BindPort: cfg.GossipPort, Key: resp.GetGossipKey(),
			Meta: membership.Meta{Role: membership.RoleWorker}, Logger: cfg.Logger,
		}, peers: resp.GetGossipPeers()}
		cfg.Gossip.Apply(&g.cfg)
		if err := g.start(); err != nil {
			return err
		}
		defer g.stop(true)
		a.cfg.GossipKeys = g.setKeys
		if promote := cfg.Promote; promote != nil {
			// The manager role gossips for the node itself, on the same
			// address, while it runs.
			a.cfg.Promote = func(ctx context.Context, token, joinAddr string) error {
				g.stop(false)
				err := promote(ctx, token, joinAddr)
				if serr := g.start(); serr != nil {
					cfg.Logger.Error("rejoining gossip after the manager role stopped", "err", serr)
				}
				return err
			}
		}
	}
	if cfg.Ready != nil {
		cfg.Ready(resp.GetNodeId())
	}
	cfg.Logger.Info("worker ready", "node_id", resp.GetNodeId(), "manager", cfg.DispatcherAddr)
	if cfg.ResumeManager {
		a.promote(ctx, "")
	}
	err = a.Run(ctx)
	if err == nil && ctx.Err() != nil && cfg.AnnounceRestart {
		// Before the deferred gossip leave, which would mark the node DOWN.
		a.announceRestart(context.WithoutCancel(ctx))
	}
	return err
}

// gossip is the worker's memberlist, which stops while a promoted manager
// role gossips for the node.
type gossip struct {
	cfg   membership.Config
	peers []string
	mu    sync.Mutex
	keys  [][]byte // the keyring beyond cfg.Key (the primary), from the session
	ml    *membership.Membership
	done  chan struct{}
}

// setKeys follows the cluster's gossip keyring (a key rotation), and
// remembers it for a restart of the memberlist after a manager role.
func (g *gossip) setKeys(primary []byte, keys [][]byte) {
	g.mu.Lock()
	g.cfg.Key, g.keys = primary, keys
	ml, logger := g.ml, g.cfg.Logger
	g.mu.Unlock()
	if ml == nil {
		return
	}
	if err := ml.SetKeys(primary, keys, time.Second); err != nil && !errors.Is(err, membership.ErrShutdown) && logger != nil {
		logger.Error("applying the cluster's gossip keys", "component", "agent", "err", err)
	}
}

func (g *gossip) start() error {
	g.mu.Lock()
	cfg, keys := g.cfg, g.keys
	g.mu.Unlock()
	ml, err := membership.New(cfg)
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		if err := ml.SetKeys(cfg.Key, keys, time.Second); err != nil {
			_ = ml.Shutdown()
			return err
		}
	}
	if _, err := ml.Join(g.peers); err != nil {
		_ = ml.Shutdown()
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rejoin := time.NewTicker(3 * time.Second)
		defer rejoin.Stop()
		events := ml.Events()
		for {
			select {
			case _, ok := <-events: // workers only need to be seen
				if !ok {
					return
				}
			case <-rejoin.C:
				// Reintroduce the managers after a healed partition.
				_, _ = ml.Rejoin(g.peers)
			}
		}
	}()
	g.mu.Lock()
	g.ml, g.done = ml, done
	g.mu.Unlock()
	return nil
}

// stop leaves gracefully (leave) or just stops, so that a manager role can
// take over the same name and address without the node looking dead.
func (g *gossip) stop(leave bool) {
	g.mu.Lock()
	ml, done := g.ml, g.done
	g.ml = nil
	g.mu.Unlock()
	if ml == nil {
		return
	}
	if leave {
		_ = ml.Leave(time.Second)
	}
	_ = ml.Shutdown()
	<-done
}

// LocalAddrFor returns the local IP this host would use to reach addr
// (host:port), the natural advertise address.
func LocalAddrFor(addr string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
}

// PortOf returns the port of host:port, or -1.
func PortOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return -1
	}
	return n
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
