//go:build linux

package ha

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
	"github.com/minke-io/minke/internal/netharness"
	"github.com/minke-io/minke/pkg/client"
)

// Bounds on waits. Every wait polls against a deadline; none is a sleep
// used as synchronisation.
const (
	readyTimeout = 30 * time.Second // a manager from exec to READY
	callTimeout  = 10 * time.Second // one Control call
	ctlTimeout   = 45 * time.Second // one swarmctl run
	stopTimeout  = 5 * time.Second  // SIGTERM to exit
	pollInterval = 50 * time.Millisecond
)

// options are the flags that vary between tests' managers.
type options struct {
	worker bool     // --worker: the managers also run containers
	extra  []string // more manager flags, e.g. --snapshot-threshold
	// controlPort, if set, serves the Control API on IP:controlPort
	// (--control-addr, mutual TLS).
	controlPort string
}

// cluster is a set of managers, manager i on host i of a harness. Use it
// from the test's goroutine, except for the client methods.
type cluster struct {
	t    *testing.T
	h    *netharness.Harness
	dir  string // short path: unix socket paths are limited to 108 bytes
	opts options
	mgrs []*mgr

	mu      sync.Mutex
	clients map[string]*client.Client // by socket
}

// mgr is one manager: its host, its data and its current process.
type mgr struct {
	i       int
	host    *netharness.Host
	dataDir string
	socket  string
	nodeID  string
	proc    *netharness.Proc
	runs    int
}

// newHarness makes a harness of n hosts with a scratch directory for the
// managers' data and sockets. Cleanups run in this order: the harness
// kills every process, then the containers the managers left are
// removed, then the directory.
func newHarness(t *testing.T, n int) (*netharness.Harness, string) {
	t.Helper()
	requireRoot(t)
	h, dir := clustertest.NewHarness(t, n, "ha")
	return h, dir
}

// newCluster starts n managers on a fresh n-host harness (plus spare
// hosts): the first bootstraps the cluster, the others join it with the
// manager token. It returns once every manager sees n managers, one of
// them the leader.
func newCluster(t *testing.T, n, spare int, opts options) *cluster {
	t.Helper()
	h, dir := newHarness(t, n+spare)
	c := &cluster{t: t, h: h, dir: dir, opts: opts, clients: map[string]*client.Client{}}
	t.Cleanup(c.closeClients)
	for i := 0; i < n; i++ {
		m := c.addMgr(i, fmt.Sprintf("m%d", i))
		if i == 0 {
			c.start(m)
		} else {
			c.start(m, "--join", c.mgrs[0].apiAddr(), "--token", c.managerToken())
		}
		c.waitReady(m)
	}
	c.waitManagers(n)
	return c
}

// addMgr records a manager on host i with its own data dir and socket.
func (c *cluster) addMgr(i int, name string) *mgr {
	d := filepath.Join(c.dir, name)
	m := &mgr{i: i, host: c.h.Host(i), dataDir: d, socket: filepath.Join(c.dir, name+".sock")}
	c.mgrs = append(c.mgrs, m)
	return m
}

func (m *mgr) ip() string      { return m.host.IP() }
func (m *mgr) apiAddr() string { return net.JoinHostPort(m.ip(), "4242") }
func (m *mgr) name() string    { return filepath.Base(m.dataDir) }

// args are the manager flags every run of m uses.
func (c *cluster) args(m *mgr) []string {
	a := []string{"--data-dir", m.dataDir, "--listen-addr", m.apiAddr(),
		"--control-socket", m.socket, "--hostname", m.name(),
		"--metrics-addr", net.JoinHostPort(m.ip(), metricsPort)}
	if c.opts.worker {
		a = append(a, "--worker")
	}
	if c.opts.controlPort != "" {
		a = append(a, "--control-addr", net.JoinHostPort(m.ip(), c.opts.controlPort))
	}
	return append(a, c.opts.extra...)
}

// start runs m's manager with its usual flags and more. It does not wait.
func (c *cluster) start(m *mgr, more ...string) {
	c.t.Helper()
	if m.proc != nil && m.proc.Running() {
		c.t.Fatalf("%s: already running", m.name())
	}
	m.runs++
	m.proc = m.host.Start(fmt.Sprintf("%s-run%d", m.name(), m.runs), managerBin, append(c.args(m), more...)...)
}

// restart starts a stopped manager again on its data, without --join: a
// manager that joined is a member now (see the report on --join).
func (c *cluster) restart(m *mgr) {
	c.t.Helper()
	c.start(m)
	c.waitReady(m)
}

// waitReady waits until m serves its socket and lists its own node READY.
func (c *cluster) waitReady(m *mgr) {
	c.t.Helper()
	c.eventually(readyTimeout, m.name()+" ready", func() (bool, string) {
		if !m.proc.Running() {
			c.t.Fatalf("%s exited before it was ready: %v; log:\n%s", m.name(), m.proc.Wait(0), clustertest.LastRun(m.proc.Log()))
		}
		if m.nodeID == "" {
			b, err := os.ReadFile(filepath.Join(m.dataDir, "node-id"))
			if err != nil {
				return false, err.Error()
			}
			m.nodeID = strings.TrimSpace(string(b))
		}
		nodes, err := c.nodes(m)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			if n.GetMeta().GetId() == m.nodeID && n.GetStatus().GetState() == minkepb.NodeStatus_READY {
				return true, ""
			}
		}
		return false, fmt.Sprintf("node %s not READY in %d nodes", m.nodeID, len(nodes))
	})
}

// waitManagers waits until every running manager lists want managers, all
// reachable, exactly one of them the leader.
func (c *cluster) waitManagers(want int) {
	c.t.Helper()
	c.eventually(readyTimeout, fmt.Sprintf("%d reachable managers with a leader", want), func() (bool, string) {
		for _, m := range c.running() {
			nodes, err := c.nodes(m)
			if err != nil {
				return false, m.name() + ": " + err.Error()
			}
			mgrs, leaders, reach := 0, 0, 0
			for _, n := range nodes {
				ms := n.GetManagerStatus()
				if n.GetRole() != minkepb.NodeRole_MANAGER || ms == nil {
					continue
				}
				mgrs++
				if ms.GetLeader() {
					leaders++
				}
				if ms.GetReachability() == minkepb.ManagerStatus_REACHABLE {
					reach++
				}
			}
			if mgrs != want || leaders != 1 || reach != want {
				return false, fmt.Sprintf("%s sees %d managers, %d leaders, %d reachable", m.name(), mgrs, leaders, reach)
			}
		}
		return true, ""
	})
}

// running lists the managers whose process runs.
func (c *cluster) running() []*mgr {
	var out []*mgr
	for _, m := range c.mgrs {
		if m.proc != nil && m.proc.Running() {
			out = append(out, m)
		}
	}
	return out
}

// leader returns the manager that the running managers agree leads.
func (c *cluster) leader() *mgr {
	c.t.Helper()
	var l *mgr
	c.eventually(readyTimeout, "a leader", func() (bool, string) {
		l = nil
		for _, m := range c.running() {
			nodes, err := c.nodes(m)
			if err != nil {
				return false, err.Error()
			}
			for _, n := range nodes {
				if n.GetManagerStatus().GetLeader() {
					lm := c.byNodeID(n.GetMeta().GetId())
					if lm == nil || (l != nil && l != lm) {
						return false, "managers disagree on the leader"
					}
					l = lm
				}
			}
		}
		return l != nil && l.proc.Running(), "no running leader"
	})
	return l
}

// follower returns a running manager other than the leader.
func (c *cluster) follower() *mgr {
	c.t.Helper()
	l := c.leader()
	for _, m := range c.running() {
		if m != l {
			return m
		}
	}
	c.t.Fatal("no running follower")
	return nil
}

func (c *cluster) byNodeID(id string) *mgr {
	for _, m := range c.mgrs {
		if m.nodeID == id && id != "" {
			return m
		}
	}
	return nil
}

// client returns a Control client on m's socket; it survives restarts
// of m (the connection is re-made on the next call).
func (c *cluster) client(m *mgr) *client.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[m.socket]; ok {
		return cl
	}
	cl, err := client.Dial(context.Background(), "unix://"+m.socket)
	if err != nil {
		panic(err) // only a malformed address fails
	}
	c.clients[m.socket] = cl
	return cl
}

func (c *cluster) closeClients() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.clients {
		cl.Close()
	}
}

func (c *cluster) nodes(m *mgr) ([]*minkepb.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.client(m).ListNodes(ctx)
}

// joinTokens reads the cluster's join tokens.
func (c *cluster) joinTokens() *minkepb.JoinTokens {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cl, _, err := c.client(c.mgrs[0]).GetCluster(ctx)
	if err != nil {
		c.t.Fatalf("reading the join tokens: %v", err)
	}
	return cl.GetJoinTokens()
}

func (c *cluster) managerToken() string { c.t.Helper(); return c.joinTokens().GetManager() }

func (c *cluster) workerToken() string { c.t.Helper(); return c.joinTokens().GetWorker() }

// eventually polls cond until it holds or bound passes.
func (c *cluster) eventually(bound time.Duration, what string, cond func() (bool, string)) {
	c.t.Helper()
	clustertest.Eventually(c.t, bound, what, cond)
}

// result is the outcome of one swarmctl run.
type result struct {
	args []string
	out  string // stdout and stderr
	code int
}

func (r result) String() string {
	return fmt.Sprintf("swarmctl %s: exit %d\n%s", strings.Join(r.args, " "), r.code, r.out)
}

// ctl runs swarmctl against m's socket from inside m's host, so that
// what it reaches over TCP (the registry, for image push) is m's.
func (c *cluster) ctl(m *mgr, args ...string) result {
	c.t.Helper()
	return ctlAt(c.t, m.host, m.socket, args...)
}

func ctlAt(t testing.TB, h *netharness.Host, socket string, args ...string) result {
	t.Helper()
	out, err := h.Exec(ctlTimeout, swarmctlBin, append([]string{"--host", socket}, args...)...)
	r := result{args: args, out: out}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("swarmctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return r
}

func (c *cluster) mustCtl(m *mgr, args ...string) string {
	c.t.Helper()
	r := c.ctl(m, args...)
	if r.code != 0 {
		c.t.Fatalf("%s", r)
	}
	return r.out
}
