//go:build linux

package failoverbench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
	"github.com/minke-io/minke/internal/netharness"
)

// Bounds on the harness's waits; every wait polls against a deadline.
const (
	buildTimeout  = 5 * time.Minute
	readyTimeout  = 30 * time.Second // a node from exec to READY
	settleTimeout = 60 * time.Second // the service back to a stable state
	ctlTimeout    = 30 * time.Second // one swarmctl run
	apiPort       = "4242"
)

// build compiles manager, worker and swarmctl from this tree and the hello
// image into dir, so the figures are those of this tree whatever `make
// build` left in bin/.
func build(tb testing.TB, dir string) clustertest.Binaries {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	bins, err := clustertest.Build(ctx, dir)
	if err != nil {
		tb.Fatal(err)
	}
	return bins
}

// node is a manager or worker on one host; it keeps its data dir and
// flags across restarts.
type node struct {
	name    string
	host    *netharness.Host
	dataDir string
	socket  string // managers only: the Control API socket
	nodeID  string
	proc    *netharness.Proc
}

func (n *node) apiAddr() string { return net.JoinHostPort(n.host.IP(), apiPort) }

// cluster is three managers on hosts 0-2 and three workers on hosts 3-5.
type cluster struct {
	tb      testing.TB
	h       *netharness.Harness
	dir     string // short: unix socket paths are limited to 108 bytes
	bins    clustertest.Binaries
	mgrs    []*node
	workers []*node
}

// newCluster builds the harness and starts the managers and workers.
// Cleanups run in this order, pass or fail: the harness kills every process
// it started, then the containers, mounts and cgroups of the cluster's
// nodes are removed, then the directory.
func newCluster(tb testing.TB, bins clustertest.Binaries) *cluster {
	tb.Helper()
	h, dir := clustertest.NewHarness(tb, 6, "fob")
	c := &cluster{tb: tb, h: h, dir: dir, bins: bins}

	for i := range 3 {
		m := &node{name: fmt.Sprintf("m%d", i), host: h.Host(i)}
		m.dataDir = filepath.Join(dir, m.name)
		m.socket = filepath.Join(dir, m.name+".sock")
		args := []string{"--data-dir", m.dataDir, "--listen-addr", m.apiAddr(),
			"--control-socket", m.socket, "--hostname", m.name}
		if i > 0 {
			args = append(args, "--join", c.mgrs[0].apiAddr(), "--token", c.token("manager"))
		}
		m.proc = m.host.Start(m.name, bins.Manager, args...)
		c.mgrs = append(c.mgrs, m)
		c.waitReady(m, m.socket)
	}
	c.waitManagers()
	tok := c.token("worker")
	for i := 3; i < 6; i++ {
		w := &node{name: fmt.Sprintf("w%d", i), host: h.Host(i)}
		w.dataDir = filepath.Join(dir, w.name)
		w.proc = w.host.Start(w.name, bins.Worker, "--data-dir", w.dataDir,
			"--join", c.mgrs[0].apiAddr(), "--token", tok,
			"--advertise-addr", w.host.IP(), "--hostname", w.name)
		c.workers = append(c.workers, w)
		c.waitReady(w, c.mgrs[0].socket)
	}
	return c
}

// token returns the cluster's join token for role.
func (c *cluster) token(role string) string {
	c.tb.Helper()
	out, err := c.ctl(c.mgrs[0].socket, "cluster", "join-token", role)
	if err != nil {
		c.tb.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// waitReady waits until n has written its node ID and the manager behind
// socket lists it READY.
func (c *cluster) waitReady(n *node, socket string) {
	c.tb.Helper()
	c.eventually(readyTimeout, n.name+" READY", func() (bool, string) {
		if !n.proc.Running() {
			c.tb.Fatalf("%s exited before it was READY: %v; log:\n%s", n.name, n.proc.Wait(0), clustertest.LastRun(n.proc.Log()))
		}
		if n.nodeID == "" {
			b, err := os.ReadFile(filepath.Join(n.dataDir, "node-id"))
			if err != nil {
				return false, err.Error()
			}
			n.nodeID = strings.TrimSpace(string(b))
		}
		st, err := c.nodeState(socket, n.nodeID)
		if err != nil {
			return false, err.Error()
		}
		return st == minkepb.NodeStatus_READY, "node " + n.nodeID + " is " + st.String()
	})
}

// waitManagers waits until every manager lists three reachable managers
// and one leader.
func (c *cluster) waitManagers() {
	c.tb.Helper()
	c.eventually(readyTimeout, "3 reachable managers with a leader", func() (bool, string) {
		for _, m := range c.mgrs {
			nodes, err := c.nodes(m.socket)
			if err != nil {
				return false, m.name + ": " + err.Error()
			}
			reach, leaders := 0, 0
			for _, n := range nodes {
				ms := n.GetManagerStatus()
				if ms.GetReachability() == minkepb.ManagerStatus_REACHABLE {
					reach++
				}
				if ms.GetLeader() {
					leaders++
				}
			}
			if reach != 3 || leaders != 1 {
				return false, fmt.Sprintf("%s sees %d reachable managers, %d leaders", m.name, reach, leaders)
			}
		}
		return true, ""
	})
}

// pushHello pushes the hello image through manager 0 from inside its host,
// so the push reaches that manager's registry over the hosts' network.
func (c *cluster) pushHello() {
	c.tb.Helper()
	m := c.mgrs[0]
	out, err := m.host.Exec(ctlTimeout, c.bins.Swarmctl, "--host", m.socket, "image", "push", c.bins.HelloTar)
	if err != nil || !strings.HasPrefix(out, "hello:latest@sha256:") {
		c.tb.Fatalf("swarmctl image push: %v\n%s", err, out)
	}
}

// ctl runs swarmctl against the manager behind socket and returns its
// stdout; a non-zero exit is an error carrying stderr. The Control API is a
// unix socket, so this needs no network and runs in the root namespace.
func (c *cluster) ctl(socket string, args ...string) (string, error) {
	return ctlCtx(context.Background(), c.bins.Swarmctl, socket, args...)
}

func ctlCtx(ctx context.Context, swarmctl, socket string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, swarmctl, append([]string{"--host", socket}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("swarmctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (c *cluster) nodes(socket string) ([]*minkepb.Node, error) {
	return nodesCtx(context.Background(), c.bins.Swarmctl, socket)
}

func nodesCtx(ctx context.Context, swarmctl, socket string) ([]*minkepb.Node, error) {
	out, err := ctlCtx(ctx, swarmctl, socket, "node", "ls", "--format", "json")
	if err != nil {
		return nil, err
	}
	return clustertest.DecodeArray(out, func() *minkepb.Node { return new(minkepb.Node) })
}

func tasksCtx(ctx context.Context, swarmctl, socket, service string) ([]*minkepb.Task, error) {
	out, err := ctlCtx(ctx, swarmctl, socket, "service", "ps", service, "--format", "json")
	if err != nil {
		return nil, err
	}
	return clustertest.DecodeArray(out, func() *minkepb.Task { return new(minkepb.Task) })
}

func (c *cluster) tasks(service string) ([]*minkepb.Task, error) {
	return tasksCtx(context.Background(), c.bins.Swarmctl, c.mgrs[0].socket, service)
}

func (c *cluster) nodeState(socket, id string) (minkepb.NodeStatus_State, error) {
	nodes, err := c.nodes(socket)
	if err != nil {
		return 0, err
	}
	for _, n := range nodes {
		if n.GetMeta().GetId() == id {
			return n.GetStatus().GetState(), nil
		}
	}
	return 0, fmt.Errorf("node %s not in %d nodes", id, len(nodes))
}

// perNode counts running tasks by node ID.
func perNode(tasks []*minkepb.Task) map[string]int {
	m := map[string]int{}
	for _, t := range clustertest.Running(tasks) {
		m[t.GetNodeId()]++
	}
	return m
}

// waitStable waits until service has want tasks running, every task meant
// to run is running, every worker is READY and runs no container that is
// not one of those tasks (a restarted worker has swept the old ones), and
// the spread satisfies ok.
func (c *cluster) waitStable(service string, want int, ok func(map[string]int) (bool, string)) []*minkepb.Task {
	c.tb.Helper()
	var tasks []*minkepb.Task
	c.eventually(settleTimeout, fmt.Sprintf("%s stable with %d running", service, want), func() (bool, string) {
		var err error
		if tasks, err = c.tasks(service); err != nil {
			return false, err.Error()
		}
		run := clustertest.Running(tasks)
		live := map[string]bool{}
		for _, t := range tasks {
			if t.GetDesiredState() == minkepb.TaskState_RUNNING && t.GetStatus().GetState() != minkepb.TaskState_RUNNING {
				return false, fmt.Sprintf("task %s is %s", t.GetMeta().GetId(), t.GetStatus().GetState())
			}
		}
		if len(run) != want {
			return false, fmt.Sprintf("%d running", len(run))
		}
		for _, t := range run {
			live[t.GetMeta().GetId()] = true
		}
		for _, w := range c.workers {
			st, err := c.nodeState(c.mgrs[0].socket, w.nodeID)
			if err != nil || st != minkepb.NodeStatus_READY {
				return false, fmt.Sprintf("%s is %v (%v)", w.name, st, err)
			}
			for _, cg := range clustertest.ContainerCgroups(w.nodeID) {
				if !live[filepath.Base(cg)] && len(clustertest.CgroupPids(cg)) > 0 {
					return false, fmt.Sprintf("%s still runs container %s", w.name, filepath.Base(cg))
				}
			}
		}
		return ok(perNode(tasks))
	})
	return tasks
}

// eventually polls cond until it holds, or fails the benchmark after bound
// with cond's last explanation.
func (c *cluster) eventually(bound time.Duration, what string, cond func() (bool, string)) {
	c.tb.Helper()
	clustertest.Eventually(c.tb, bound, what, cond)
}
