//go:build linux

package habench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
	"github.com/minke-io/minke/pkg/client"
)

// Bounds on every wait of the harness; each polls against a deadline.
const (
	buildTimeout   = 5 * time.Minute
	startTimeout   = 30 * time.Second // exec to Control API answering
	healthyTimeout = 60 * time.Second // three managers Reachable, one Leader
	stopTimeout    = 10 * time.Second // SIGTERM to exit, before SIGKILL
	callTimeout    = 5 * time.Second  // one Control call of the harness
	pollInterval   = 50 * time.Millisecond
)

// managerIPs are the loopback addresses the three managers listen on.
var managerIPs = []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}

// buildManager builds cmd/manager into dir once per benchmark, so the
// figures are those of this tree whatever `make build` left in bin/.
func buildManager(tb testing.TB, dir string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	bin := filepath.Join(dir, "manager")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/minke-io/minke/cmd/manager")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tb.Fatalf("go build cmd/manager: %v\n%s", err, out.String())
	}
	return bin
}

// cluster owns three manager processes and their directories.
type cluster struct {
	tb    testing.TB
	dir   string
	bin   string
	mgrs  []*manager
	ports clustertest.Ports // ports handed out
}

// manager is one manager process; it keeps its addresses and data dir
// across restarts.
type manager struct {
	name    string
	dataDir string
	sock    string
	logPath string
	listen  string // --listen-addr: the address nodes list as api_addr
	args    []string

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	cl   *client.Client
}

// startCluster starts manager 1, then managers 2 and 3 joining it with the
// manager token, and waits for all three to be Reachable under one Leader.
// Cleanup stops every process, whatever happens.
func startCluster(tb testing.TB) *cluster {
	tb.Helper()
	c := &cluster{tb: tb, dir: tb.TempDir()}
	c.bin = buildManager(tb, c.dir)
	tb.Cleanup(c.stopAll) // runs before TempDir's removal (cleanups are LIFO)
	var token string
	for i, ip := range managerIPs {
		name := fmt.Sprintf("m%d", i+1)
		ports := c.freePorts(ip, 4)
		m := &manager{
			name:    name,
			dataDir: filepath.Join(c.dir, name),
			logPath: filepath.Join(c.dir, name+".log"),
			listen:  net.JoinHostPort(ip, strconv.Itoa(ports[0])),
		}
		m.sock = filepath.Join(m.dataDir, "m.sock")
		m.args = []string{
			"--data-dir", m.dataDir, "--hostname", name, "--log-level", "warn",
			"--listen-addr", m.listen,
			"--raft-addr", net.JoinHostPort(ip, strconv.Itoa(ports[1])),
			"--gossip-addr", net.JoinHostPort(ip, strconv.Itoa(ports[2])),
			"--registry-addr", net.JoinHostPort(ip, strconv.Itoa(ports[3])),
			"--control-socket", m.sock,
		}
		c.mgrs = append(c.mgrs, m)
		var join []string
		if i > 0 {
			// Only the first start joins: a restart resumes from the data dir.
			join = []string{"--join", c.mgrs[0].listen, "--token", token}
		}
		c.start(m, join...)
		if i == 0 {
			token = c.managerToken(m)
		}
	}
	c.waitHealthy()
	return c
}

// managerToken reads the cluster's manager join token from m.
func (c *cluster) managerToken(m *manager) string {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cl, _, err := m.cl.GetCluster(ctx)
	if err != nil {
		c.tb.Fatalf("%s: GetCluster: %v", m.name, err)
	}
	tok := cl.GetJoinTokens().GetManager()
	if tok == "" {
		c.tb.Fatalf("%s: the cluster has no manager join token", m.name)
	}
	return tok
}

// start execs m (with extra flags for this start only) and waits until
// its Control API answers.
func (c *cluster) start(m *manager, extra ...string) {
	c.tb.Helper()
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer logf.Close() // the child holds its own descriptor
	fmt.Fprintf(logf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, append(append([]string{}, m.args...), extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig kills the managers if the benchmark process dies before
	// its cleanup can run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.tb.Fatalf("start %s: %v", m.name, err)
	}
	m.cmd, m.done = cmd, make(chan struct{})
	done := m.done
	go func() { _ = cmd.Wait(); close(done) }()

	// A fresh client per start: one kept across a kill would be in gRPC's
	// reconnect backoff and fail fast long after the restart.
	if m.cl != nil {
		_ = m.cl.Close()
	}
	m.cl, err = client.Dial(context.Background(), "unix://"+m.sock)
	if err != nil {
		c.tb.Fatal(err)
	}
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			c.tb.Fatalf("%s exited while starting; log:\n%s", m.name, tail(m.logPath))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _, last = m.cl.GetCluster(ctx)
		cancel()
		if last == nil {
			return
		}
		time.Sleep(pollInterval)
	}
	c.tb.Fatalf("%s: Control API not answering within %s (last: %v); log:\n%s", m.name, startTimeout, last, tail(m.logPath))
}

// kill sends SIGKILL to m and waits for it to be gone.
func (c *cluster) kill(m *manager) {
	c.tb.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.tb.Fatalf("kill %s: %v", m.name, err)
	}
	select {
	case <-m.done:
	case <-time.After(stopTimeout):
		c.tb.Fatalf("%s still running %s after SIGKILL", m.name, stopTimeout)
	}
}

// stopAll stops every manager (SIGTERM, then SIGKILL) and closes clients.
func (c *cluster) stopAll() {
	for _, m := range c.mgrs {
		if m.cl != nil {
			_ = m.cl.Close()
		}
		if m.cmd == nil {
			continue
		}
		select {
		case <-m.done:
			continue
		default:
		}
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
			<-m.done
		}
	}
}

// health says whether, as seen through m, three managers are Reachable and
// exactly one is Leader; it returns the leader's listen address.
func health(ctx context.Context, m *manager) (leaderAPI string, err error) {
	nodes, err := m.cl.ListNodes(ctx)
	if err != nil {
		return "", err
	}
	var managers, reachable int
	var leaders []string
	for _, n := range nodes {
		ms := n.GetManagerStatus()
		if n.GetRole() != minkepb.NodeRole_MANAGER || ms == nil {
			continue
		}
		managers++
		if ms.GetReachability() == minkepb.ManagerStatus_REACHABLE {
			reachable++
		}
		if ms.GetLeader() {
			leaders = append(leaders, ms.GetApiAddr())
		}
	}
	if managers != 3 || reachable != 3 || len(leaders) != 1 {
		return "", fmt.Errorf("%d managers, %d reachable, leaders %v", managers, reachable, leaders)
	}
	return leaders[0], nil
}

// waitHealthy waits until every manager reports three Reachable managers
// and the same one Leader, and returns that leader.
func (c *cluster) waitHealthy() *manager {
	c.tb.Helper()
	deadline := time.Now().Add(healthyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if leader, err := c.healthyOnce(); err == nil {
			return leader
		} else {
			last = err
		}
		time.Sleep(pollInterval)
	}
	c.tb.Fatalf("cluster not healthy within %s: %v", healthyTimeout, last)
	return nil
}

func (c *cluster) healthyOnce() (*manager, error) {
	var leader string
	for _, m := range c.mgrs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		l, err := health(ctx, m)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		if leader != "" && l != leader {
			return nil, fmt.Errorf("managers disagree on the leader: %s and %s", leader, l)
		}
		leader = l
	}
	for _, m := range c.mgrs {
		if m.listen == leader {
			return m, nil
		}
	}
	return nil, fmt.Errorf("leader %s is none of this cluster's managers", leader)
}

// freePorts returns n ports free on ip for both TCP and UDP (memberlist
// binds both) and not handed out before.
func (c *cluster) freePorts(ip string, n int) []int {
	c.tb.Helper()
	return c.ports.Free(c.tb, ip, n)
}

// tail returns the end of a log file, for failure messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
