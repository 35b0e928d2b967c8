// Command worker runs a minke worker: it joins a manager with a token and
// runs the containers assigned to it.
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
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/minke-io/minke/internal/managerrole"
	"github.com/minke-io/minke/internal/nodeinfo"
	"github.com/minke-io/minke/internal/pprofserve"
	"github.com/minke-io/minke/pkg/agent"
	"github.com/minke-io/minke/pkg/membership"
	"github.com/minke-io/minke/pkg/runtime"
)

// The manager's default ports (pkg/manager DefaultGossipPort,
// DefaultAPIPort), spelled out: this binary does not link the manager.
const (
	defaultGossipPort     = 4244
	defaultManagerAPIPort = 4242
)

func main() {
	runtime.MaybeRunInit()
	gcPercentUnlessSet(workerGCPercent)
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg         agent.WorkerConfig
		gossipAddr  string
		hostname    string
		managerAddr string
		level       string
		runtimeKind string
		simNodes    int
		logs        logFlags
	)
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/minke/worker", "directory for the node ID, images and containers")
	fs.StringVar(&cfg.DispatcherAddr, "join", "", "a manager's --listen-addr (HOST:PORT)")
	fs.StringVar(&cfg.Token, "token", "", "worker join token ('swarmctl cluster join-token worker' prints it); not needed once the node has its certificate (DATA/certs)")
	fs.StringVar(&cfg.Addr, "advertise-addr", "", "IP other nodes reach this node on (default: the local IP that routes to the manager)")
	fs.StringVar(&gossipAddr, "gossip-addr", "", "memberlist port or HOST:PORT (default ADVERTISE:4244)")
	fs.StringVar(&cfg.CgroupParent, "cgroup-parent", "minke", "cgroup under which this node's containers get cgroups (PARENT/NODE_ID/TASK_ID)")
	fs.StringVar(&cfg.ContainerSubnet, "container-subnet", "", "this node's container subnet (CIDR, unique in the cluster; default 172.29.N.0/24, N the last byte of --advertise-addr), or \"none\" for no container network")
	fs.StringVar(&cfg.Bridge, "bridge", "", "name of this node's container bridge and nftables table (default minke-NODEID, cut to 15 bytes)")
	fs.StringVar(&hostname, "hostname", "", "node hostname to report (default the machine's)")
	fs.StringVar(&managerAddr, "manager-listen-addr", "", "--listen-addr of the manager role if this node is promoted (default ADVERTISE:4242; Raft and registry use the next ports)")
	fs.DurationVar(&cfg.Gossip.ProbeInterval, "gossip-probe-interval", membership.DefaultProbeInterval, "how often each node probes a peer (failure detection)")
	fs.DurationVar(&cfg.Gossip.ProbeTimeout, "gossip-probe-timeout", membership.DefaultProbeTimeout, "how long a probe waits for its ack")
	fs.IntVar(&cfg.Gossip.SuspicionMult, "gossip-suspicion-mult", membership.DefaultSuspicionMult, "suspicion time before a node is declared dead, in probe intervals (scaled by log10 of the cluster size)")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&runtimeKind, "runtime", "real", "real, or simulated: start no processes, report every task RUNNING (for benchmarks and scale tests only)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", agent.DefaultMetricsAddr, "serve Prometheus metrics (per-task CPU seconds, memory bytes, pids, OOM kills; labels task, service, slot) on HOST:PORT/metrics; \"\" for none. Loopback by default; if the default port is taken (another worker on this host) the worker runs without metrics")
	fs.BoolVar(&cfg.AnnounceRestart, "announce-restart", true, "on SIGTERM or SIGINT, tell the managers this node stops for a planned restart (upgrade) and will be back: they keep its tasks for their --worker-restart-grace (default 30s) while its containers keep running, and this node re-adopts them when it starts again; false: its tasks are replaced as soon as it leaves, as after a crash")
	fs.IntVar(&simNodes, "simulate-nodes", 1, "with --runtime=simulated, how many nodes this process acts as (each joins and holds its own session)")
	// Images.
	var imageGC, maxLayerFile string
	fs.StringVar(&cfg.Images.RegistryConfig, "registry-config", "", "docker config.json (or its directory) with registry credentials (default $DOCKER_CONFIG/config.json, else ~/.docker/config.json); read at every pull")
	fs.StringVar(&imageGC, "image-gc", "unused-after=24h", "remove images no container uses: off, or unused-after=DURATION (not pulled or used to create a container for that long)")
	fs.StringVar(&maxLayerFile, "max-layer-file-size", "8GiB", "largest file an image layer may hold; a larger one fails the pull (bytes, or with KiB/MiB/GiB/KB/MB/GB)")
	logs.register(fs)
	fs.Func("insecure-registry", "registry HOST:PORT reached over plain HTTP (repeatable; loopback and RFC 1918 addresses always are)", func(v string) error {
		cfg.Images.InsecureRegistries = append(cfg.Images.InsecureRegistries, v)
		return nil
	})
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	cfg.MetricsBestEffort = !flagSet(fs, "metrics-addr")
	var err error
	if cfg.Images.GC, err = runtime.ParseImageGCPolicy(imageGC); err != nil {
		return fmt.Errorf("--image-gc: %w", err)
	}
	if cfg.Images.MaxLayerFileSize, err = parseByteSize(maxLayerFile); err != nil {
		return fmt.Errorf("invalid --max-layer-file-size %q: %w", maxLayerFile, err)
	}
	if err := logs.apply(&cfg); err != nil {
		return err
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", level)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	pprofserve.Serve(cfg.Logger)
	if cfg.DispatcherAddr == "" {
		return fmt.Errorf("--join is required: give a manager's --listen-addr as HOST:PORT")
	}
	if _, _, err := net.SplitHostPort(cfg.DispatcherAddr); err != nil {
		return fmt.Errorf("invalid --join %q: want HOST:PORT", cfg.DispatcherAddr)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "certs", "cert.pem")); cfg.Token == "" && err != nil {
		return fmt.Errorf("--token is required to join: 'swarmctl cluster join-token worker' on a manager prints it")
	}
	if cfg.Addr == "" {
		ip, err := agent.LocalAddrFor(cfg.DispatcherAddr)
		if err != nil {
			return fmt.Errorf("cannot work out --advertise-addr: %w", err)
		}
		cfg.Addr = ip
	}
	if net.ParseIP(cfg.Addr) == nil {
		return fmt.Errorf("invalid --advertise-addr %q: want an IP address", cfg.Addr)
	}
	cfg.GossipPort = defaultGossipPort
	if gossipAddr != "" {
		host, port, err := net.SplitHostPort(gossipAddr)
		if err != nil {
			host, port = "", gossipAddr
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("invalid --gossip-addr %q: want PORT or HOST:PORT", gossipAddr)
		}
		if host != "" {
			cfg.Addr = host
		}
		cfg.GossipPort = n
	}
	cfg.Description = nodeinfo.Describe(hostname)
	switch {
	case runtimeKind == "simulated":
		return runSimulated(cfg, simNodes)
	case runtimeKind != "real":
		return fmt.Errorf("invalid --runtime %q: want real or simulated", runtimeKind)
	case simNodes != 1:
		return fmt.Errorf("--simulate-nodes %d needs --runtime=simulated", simNodes)
	}
	if managerAddr == "" {
		managerAddr = net.JoinHostPort(cfg.Addr, strconv.Itoa(defaultManagerAPIPort))
	}
	gossipHostPort := net.JoinHostPort(cfg.Addr, strconv.Itoa(cfg.GossipPort))
	managerDir := filepath.Join(cfg.DataDir, "manager")
	_, err = os.Stat(filepath.Join(managerDir, "raft"))
	cfg.ResumeManager = err == nil
	cfg.Promote = func(ctx context.Context, token, joinAddr string) error {
		return runManagerRole(ctx, cfg, l, managerDir, managerAddr, gossipHostPort, hostname, token, joinAddr)
	}
	cfg.Ready = releaseStartupMemory(cfg.Ready)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return agent.RunWorker(ctx, cfg)
}

// runSimulated acts as n simulated nodes (see agent.RunSimulated): no
// containers, no gossip, no manager role.
func runSimulated(cfg agent.WorkerConfig, n int) error {
	if n < 1 {
		return fmt.Errorf("invalid --simulate-nodes %d: want at least 1", n)
	}
	cfg.Logger.Warn("simulated runtime: tasks are reported RUNNING but no process starts; for benchmarks and scale tests only", "nodes", n)
	gcPercentUnlessSet(simulatorGCPercent)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return agent.RunSimulated(ctx, agent.SimulatedConfig{
		DataDir: cfg.DataDir, DispatcherAddr: cfg.DispatcherAddr, Token: cfg.Token, Nodes: n,
		Addr: cfg.Addr, Description: cfg.Description, Logger: cfg.Logger,
	})
}

// runManagerRole runs the manager role of a promoted worker with the same
// node identity, data under DATA/manager and its control socket there, as
// a child process: the manager binary next to this one (see
// internal/managerrole). When the node is demoted the role stops and its
// Raft state is dropped, so that a later promotion joins afresh.
func runManagerRole(ctx context.Context, w agent.WorkerConfig, level slog.Level, dir, listenAddr, gossipAddr, hostname, token, joinAddr string) error {
	err := managerrole.Run(ctx, managerrole.Config{
		WorkerDataDir: w.DataDir, Dir: dir, ListenAddr: listenAddr, GossipAddr: gossipAddr,
		Hostname: hostname, Gossip: w.Gossip, LogLevel: level, Token: token, JoinAddr: joinAddr,
	})
	if errors.Is(err, managerrole.ErrDemoted) {
		w.Logger.Info("demoted: the manager role stopped; this node stays a worker")
		return nil
	}
	return err
}

// flagSet reports whether name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
