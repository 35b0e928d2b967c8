// Command manager runs a minke manager: Raft store, Control API, Dispatcher,
// built-in registry, gossip and the leader's controllers; with --worker it
// also runs containers itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minke-io/minke/internal/managerrole"
	"github.com/minke-io/minke/internal/pprofserve"
	"github.com/minke-io/minke/pkg/agent"
	"github.com/minke-io/minke/pkg/dispatcher"
	"github.com/minke-io/minke/pkg/manager"
	"github.com/minke-io/minke/pkg/membership"
	"github.com/minke-io/minke/pkg/runtime"
)

func main() {
	runtime.MaybeRunInit()
	tuneMemory()
	err := run()
	if errors.Is(err, manager.ErrDemoted) && promotedWorker {
		os.Exit(managerrole.ExitDemoted) // the worker that started this role reports it
	}
	if errors.Is(err, manager.ErrDemoted) {
		fmt.Fprintln(os.Stderr, "manager: this node was demoted or removed: it is no longer a manager. "+
			"To keep it as a worker, start 'worker --join MANAGER_ADDR --token WORKER_TOKEN' with a new --data-dir.")
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", strings.TrimPrefix(err.Error(), "manager: "))
		os.Exit(1)
	}
}

// promotedWorker: this process is the manager role of a promoted worker
// (internal/managerrole), set by the flag of that name.
var promotedWorker bool

func run() error {
	var (
		cfg      manager.Config
		worker   bool
		subnet   string
		bridge   string
		hostname string
		level    string
	)
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/minke/manager", "directory for the Raft log, snapshots, registry blobs and (with --worker) containers")
	fs.StringVar(&cfg.ListenAddr, "listen-addr", "127.0.0.1:4242", "worker-facing gRPC address (HOST:PORT); other ports default to this host")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", "", "Raft address (default HOST:4243)")
	fs.StringVar(&cfg.GossipAddr, "gossip-addr", "", "memberlist address, TCP and UDP (default HOST:4244)")
	fs.StringVar(&cfg.RegistryAddr, "registry-addr", "", "built-in registry address (default HOST:4245)")
	fs.StringVar(&cfg.ControlSocket, "control-socket", manager.DefaultSocket, "Control API unix socket (mode 0600)")
	fs.StringVar(&cfg.ControlAddr, "control-addr", "", "also serve the Control API on TCP HOST:PORT, mutual TLS: clients need a certificate from 'swarmctl cluster client-cert'")
	fs.DurationVar(&cfg.CertLifetime, "cert-lifetime", 0, "lifetime of node and client certificates of a new cluster (default 90 days = 2160h); nodes renew at 2/3 of it")
	fs.BoolVar(&worker, "worker", false, "also run the worker role on this node")
	fs.BoolVar(&promotedWorker, managerrole.Flag, false, "run as the manager role of a promoted worker, started by that worker (not by hand): without --join it only resumes the state in --data-dir, the join token comes from $"+managerrole.TokenEnv+", a demotion exits with status 3")
	fs.StringVar(&subnet, "container-subnet", "", "with --worker: the node's container subnet (CIDR; default 172.29.N.0/24, N the last byte of the --listen-addr host), or \"none\"")
	fs.StringVar(&bridge, "bridge", "", "with --worker: the node's container bridge and nftables table name (default minke-NODEID, cut to 15 bytes)")
	fs.StringVar(&cfg.JoinAddr, "join", "", "join an existing cluster through this manager's --listen-addr (HOST:PORT), as a manager")
	fs.StringVar(&cfg.Token, "token", "", "manager join token, with --join ('swarmctl cluster join-token manager' prints it)")
	fs.BoolVar(&cfg.ForceNewCluster, "force-new-cluster", false, "recover from lost quorum: turn this manager's data into a one-manager cluster, keeping all services")
	fs.StringVar(&cfg.Restore, "restore", "", "start a new cluster from a backup file ('swarmctl cluster backup'); --data-dir must be empty")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", 8192, "Raft log entries between snapshots (older entries are compacted); a snapshot waits for a moment when the store is not busy, up to twice as many")
	fs.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", 30*time.Second, "how often Raft checks for twice --snapshot-threshold entries (a snapshot then is taken even while the store is busy); also the wait after a failed snapshot, and the pacer's tick when under 1s")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on HOST:PORT/metrics")
	fs.DurationVar(&cfg.WorkerRestartGrace, "worker-restart-grace", dispatcher.DefaultRestartGracePeriod, "how long a worker stopped for a planned restart (SIGTERM) is held READY with its tasks before they are replaced; 0s or less: replace at once, as after a crash")
	fs.StringVar(&hostname, "hostname", "", "node hostname to report (default the machine's)")
	fs.DurationVar(&cfg.Gossip.ProbeInterval, "gossip-probe-interval", membership.DefaultProbeInterval, "how often each node probes a peer (failure detection)")
	fs.DurationVar(&cfg.Gossip.ProbeTimeout, "gossip-probe-timeout", membership.DefaultProbeTimeout, "how long a probe waits for its ack")
	fs.IntVar(&cfg.Gossip.SuspicionMult, "gossip-suspicion-mult", membership.DefaultSuspicionMult, "suspicion time before a node is declared dead, in probe intervals (scaled by log10 of the cluster size)")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	fs.Func("insecure-registry", "registry HOST:PORT reached over plain HTTP when resolving service images, and for pulls with --worker (repeatable; loopback and RFC 1918 addresses always are)", func(v string) error {
		cfg.InsecureRegistries = append(cfg.InsecureRegistries, v)
		return nil
	})
	fs.StringVar(&cfg.RegistryConfig, "registry-config", "", "docker config.json (or its directory) with credentials for resolving service images to digests, and for pulls with --worker (default $DOCKER_CONFIG/config.json, else ~/.docker/config.json)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if promotedWorker {
		if worker {
			return fmt.Errorf("--%s cannot be combined with --worker: the worker that started it runs the containers", managerrole.Flag)
		}
		cfg.ResumeOnly = cfg.JoinAddr == ""
		if cfg.Token == "" {
			cfg.Token = os.Getenv(managerrole.TokenEnv)
		}
	}
	if cfg.WorkerRestartGrace <= 0 {
		cfg.WorkerRestartGrace = -1 // none (0 in the config is the default)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: manager takes only flags (see -h)", fs.Arg(0))
	}
	if cfg.JoinAddr != "" && (cfg.ForceNewCluster || cfg.Restore != "") {
		return fmt.Errorf("--join cannot be combined with --force-new-cluster or --restore")
	}
	if cfg.ForceNewCluster && cfg.Restore != "" {
		return fmt.Errorf("--force-new-cluster and --restore are two different recoveries: pick one")
	}
	if cfg.JoinAddr != "" && cfg.Token == "" {
		return fmt.Errorf("--join needs --token: 'swarmctl cluster join-token manager' on an existing manager prints it")
	}
	logger, err := newLogger(level)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	pprofserve.Serve(logger)
	cfg.Hostname = hostname
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	m, err := manager.New(cfg)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- m.Run(ctx) }()
	if !worker {
		return <-errc
	}
	select {
	case err := <-errc:
		return err
	case <-m.Ready():
	}
	host, _, _ := net.SplitHostPort(m.DispatcherAddr())
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var workerMetrics prometheus.Registerer // per-task metrics on --metrics-addr
	if cfg.MetricsAddr != "" {
		workerMetrics = m.MetricsRegistry()
	}
	go func() {
		errc <- agent.RunWorker(wctx, agent.WorkerConfig{
			DataDir: cfg.DataDir, DispatcherAddr: m.DispatcherAddr(), NodeID: m.NodeID(), NodeSecret: m.NodeSecret(),
			Addr: host, Description: manager.Describe(hostname), GossipPort: -1, Logger: logger, Identity: m.Identity(),
			ContainerSubnet: subnet, Bridge: bridge,
			Images:  agent.ImageConfig{RegistryConfig: cfg.RegistryConfig, InsecureRegistries: cfg.InsecureRegistries},
			Metrics: workerMetrics,
		})
	}()
	// Either part failing stops both.
	err = <-errc
	stop()
	wcancel()
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
