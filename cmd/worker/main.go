// Command worker runs a minke worker: it joins a manager with a token and
// runs the containers assigned to it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/minke-io/minke/pkg/agent"
	"github.com/minke-io/minke/pkg/manager"
	"github.com/minke-io/minke/pkg/runtime"
)

func main() {
	runtime.MaybeRunInit()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg        agent.WorkerConfig
		gossipAddr string
		hostname   string
		level      string
	)
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/minke/worker", "directory for the node ID, images and containers")
	fs.StringVar(&cfg.DispatcherAddr, "join", "", "a manager's --listen-addr (HOST:PORT)")
	fs.StringVar(&cfg.Token, "token", "", "worker join token ('swarmctl cluster join-token worker' prints it)")
	fs.StringVar(&cfg.Addr, "advertise-addr", "", "IP other nodes reach this node on (default: the local IP that routes to the manager)")
	fs.StringVar(&gossipAddr, "gossip-addr", "", "memberlist port or HOST:PORT (default ADVERTISE:4244)")
	fs.StringVar(&cfg.CgroupParent, "cgroup-parent", "minke", "cgroup under which this node's containers get cgroups (PARENT/NODE_ID/TASK_ID)")
	fs.StringVar(&hostname, "hostname", "", "node hostname to report (default the machine's)")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", level)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	if cfg.DispatcherAddr == "" {
		return fmt.Errorf("--join is required: give a manager's --listen-addr as HOST:PORT")
	}
	if _, _, err := net.SplitHostPort(cfg.DispatcherAddr); err != nil {
		return fmt.Errorf("invalid --join %q: want HOST:PORT", cfg.DispatcherAddr)
	}
	if cfg.Token == "" {
		return fmt.Errorf("--token is required: 'swarmctl cluster join-token worker' on a manager prints it")
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
	cfg.GossipPort = manager.DefaultGossipPort
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
	cfg.Description = manager.Describe(hostname)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return agent.RunWorker(ctx, cfg)
}
