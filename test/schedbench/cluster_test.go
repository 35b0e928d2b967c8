//go:build linux

package schedbench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
	"github.com/minke-io/minke/internal/pprofserve"
	"github.com/minke-io/minke/pkg/client"
)

// Bounds on the harness's waits; each polls against a deadline.
const (
	startTimeout   = 30 * time.Second // exec to Control API answering
	healthyTimeout = 60 * time.Second // all managers Reachable, one Leader
	stopTimeout    = 15 * time.Second // SIGTERM to exit, before SIGKILL
	callTimeout    = 30 * time.Second // one Control call of the harness
	// pollInterval is how often the run phase reads the counts, and so the
	// resolution of the times it reports. ListServices answers a
	// replicated service (every service of this load) from the store's
	// per-service counts, not its tasks, so a poll does not read the
	// 100,000 tasks.
	pollInterval = 200 * time.Millisecond
)

// managerIPs are the loopback addresses managers listen on, in order.
var managerIPs = []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}

// cluster owns the manager processes, the simulated worker process and
// their directories.
type cluster struct {
	tb     testing.TB
	dir    string
	mgrs   []*proc
	worker *proc
	leader *proc
	ports  clustertest.Ports
}

// proc is one child process.
type proc struct {
	name    string
	listen  string // managers: --listen-addr
	metrics string // managers: --metrics-addr
	pprof   string // MINKE_PPROF_ADDR, when SCHEDBENCH_PROFILE is set
	sock    string // managers: control socket
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	cl      *client.Client
}

// startCluster starts n managers (the first bootstraps, the others join
// it) and waits until they agree on a leader. Cleanup stops every process.
func startCluster(tb testing.TB, n int) *cluster {
	tb.Helper()
	requireBinaries(tb)
	c := &cluster{tb: tb, dir: tb.TempDir()}
	tb.Cleanup(c.stopAll) // before TempDir's removal (cleanups are LIFO)
	var token string
	for i, ip := range managerIPs[:n] {
		ports := c.ports.Free(tb, ip, 6)
		m := &proc{name: fmt.Sprintf("m%d", i+1), listen: net.JoinHostPort(ip, strconv.Itoa(ports[0])),
			metrics: net.JoinHostPort(ip, strconv.Itoa(ports[4]))}
		if profileDir != "" {
			m.pprof = net.JoinHostPort(ip, strconv.Itoa(ports[5]))
		}
		dataDir := filepath.Join(c.dir, m.name)
		m.sock = filepath.Join(dataDir, "m.sock")
		args := []string{
			"--data-dir", dataDir, "--hostname", m.name, "--log-level", "warn",
			"--listen-addr", m.listen,
			"--raft-addr", net.JoinHostPort(ip, strconv.Itoa(ports[1])),
			"--gossip-addr", net.JoinHostPort(ip, strconv.Itoa(ports[2])),
			"--registry-addr", net.JoinHostPort(ip, strconv.Itoa(ports[3])),
			"--control-socket", m.sock, "--metrics-addr", m.metrics,
		}
		if i > 0 {
			args = append(args, "--join", c.mgrs[0].listen, "--token", token)
		}
		c.start(m, managerBin, args...)
		c.mgrs = append(c.mgrs, m)
		c.waitAPI(m)
		if i == 0 {
			cl := c.getCluster(m)
			token = cl.GetJoinTokens().GetManager()
		}
	}
	c.leader = c.waitHealthy()
	return c
}

// startWorkers starts one simulated worker process acting as nodes nodes,
// joined through the first manager, and waits until the leader sees them
// all READY.
func (c *cluster) startWorkers(nodes int, bound time.Duration) {
	c.tb.Helper()
	tok := c.getCluster(c.leader).GetJoinTokens().GetWorker()
	c.worker = &proc{name: "worker"}
	if profileDir != "" {
		c.worker.pprof = net.JoinHostPort("127.0.0.1", strconv.Itoa(c.ports.Free(c.tb, "127.0.0.1", 1)[0]))
	}
	c.start(c.worker, workerBin, "--runtime=simulated", "--simulate-nodes", strconv.Itoa(nodes),
		"--join", c.mgrs[0].listen, "--token", tok, "--data-dir", filepath.Join(c.dir, "worker"),
		"--advertise-addr", "127.0.0.1", "--hostname", "sim", "--log-level", "warn")
	clustertest.Eventually(c.tb, bound, fmt.Sprintf("%d simulated nodes READY", nodes), func() (bool, string) {
		c.checkAlive()
		ready, err := c.readyWorkers()
		if err != nil {
			return false, err.Error()
		}
		return len(ready) == nodes, fmt.Sprintf("%d of %d READY", len(ready), nodes)
	})
}

// readyWorkers lists the READY worker nodes, as the leader sees them.
func (c *cluster) readyWorkers() ([]*minkepb.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	nodes, err := c.leader.cl.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	var ready []*minkepb.Node
	for _, n := range nodes {
		if n.GetRole() == minkepb.NodeRole_WORKER && n.GetStatus().GetState() == minkepb.NodeStatus_READY {
			ready = append(ready, n)
		}
	}
	return ready, nil
}

func (c *cluster) start(p *proc, bin string, args ...string) {
	c.tb.Helper()
	p.logPath = filepath.Join(c.dir, p.name+".log")
	logf, err := os.Create(p.logPath)
	if err != nil {
		c.tb.Fatal(err)
	}
	// A failed run shows what each process said last (the temporary
	// directory with the logs is removed after this cleanup, which runs
	// first because it is registered later).
	c.tb.Cleanup(func() {
		if c.tb.Failed() {
			c.tb.Logf("%s log (tail):\n%s", p.name, tail(p.logPath))
		}
	})
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if p.pprof != "" {
		cmd.Env = append(os.Environ(), pprofserve.Env+"="+p.pprof)
	}
	// Pdeathsig: the children die with the benchmark if its cleanup cannot
	// run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.tb.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	go func() { _ = cmd.Wait(); close(done) }()
}

// waitAPI waits until m's Control API answers.
func (c *cluster) waitAPI(m *proc) {
	c.tb.Helper()
	var err error
	if m.cl, err = client.Dial(context.Background(), "unix://"+m.sock); err != nil {
		c.tb.Fatal(err)
	}
	clustertest.Eventually(c.tb, startTimeout, m.name+" Control API answering", func() (bool, string) {
		c.checkAlive()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _, err := m.cl.GetCluster(ctx)
		return err == nil, fmt.Sprint(err)
	})
}

func (c *cluster) getCluster(m *proc) *minkepb.Cluster {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cl, _, err := m.cl.GetCluster(ctx)
	if err != nil {
		c.tb.Fatalf("%s: GetCluster: %v", m.name, err)
	}
	return cl
}

// waitHealthy waits until every manager sees all of them Reachable and the
// same Leader, and returns the leader.
func (c *cluster) waitHealthy() *proc {
	c.tb.Helper()
	var leader *proc
	clustertest.Eventually(c.tb, healthyTimeout, "managers healthy", func() (bool, string) {
		c.checkAlive()
		leaderAddr := ""
		for _, m := range c.mgrs {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			nodes, err := m.cl.ListNodes(ctx)
			cancel()
			if err != nil {
				return false, m.name + ": " + err.Error()
			}
			reachable, leaders := 0, []string{}
			for _, n := range nodes {
				ms := n.GetManagerStatus()
				if ms == nil || n.GetRole() != minkepb.NodeRole_MANAGER {
					continue
				}
				if ms.GetReachability() == minkepb.ManagerStatus_REACHABLE {
					reachable++
				}
				if ms.GetLeader() {
					leaders = append(leaders, ms.GetApiAddr())
				}
			}
			if reachable != len(c.mgrs) || len(leaders) != 1 || (leaderAddr != "" && leaders[0] != leaderAddr) {
				return false, fmt.Sprintf("%s: %d reachable, leaders %v", m.name, reachable, leaders)
			}
			leaderAddr = leaders[0]
		}
		for _, m := range c.mgrs {
			if m.listen == leaderAddr {
				leader = m
				return true, ""
			}
		}
		return false, "leader " + leaderAddr + " is not one of ours"
	})
	return leader
}

// checkAlive fails the test with the log of a child that exited.
func (c *cluster) checkAlive() {
	c.tb.Helper()
	for _, p := range append(append([]*proc{}, c.mgrs...), c.worker) {
		if p == nil || p.done == nil {
			continue
		}
		select {
		case <-p.done:
			c.tb.Fatalf("%s exited; log:\n%s", p.name, tail(p.logPath))
		default:
		}
	}
}

// stopAll stops the worker, then the managers (SIGTERM, then SIGKILL of
// the process group).
func (c *cluster) stopAll() {
	for _, p := range append([]*proc{c.worker}, c.mgrs...) {
		if p == nil || p.cmd == nil {
			continue
		}
		if p.cl != nil {
			_ = p.cl.Close()
		}
		select {
		case <-p.done:
			continue
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// rssBytes is a live process's resident set size, from /proc.
func rssBytes(p *proc) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
}

// cpuTime is a live process's user+system CPU time, from /proc (fields
// 14 and 15 of stat, in clock ticks of 1/100 s).
func cpuTime(tb testing.TB, p *proc) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatalf("%s: %v", p.name, err)
	}
	// The command name (field 2) may contain spaces; fields resume after ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("%s: bad /proc stat %q", p.name, b)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// tail returns the end of a log file, for failure messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// scrape reads manager m's counters and gauges from --metrics-addr, by
// series (name and labels as exposed, e.g.
// minke_dispatcher_session_wakes_total{cause="network"}).
func scrape(m *proc) (map[string]float64, error) {
	hc := &http.Client{Timeout: callTimeout}
	resp, err := hc.Get("http://" + m.metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: GET /metrics: %s", m.name, resp.Status)
	}
	return clustertest.ParseMetrics(resp.Body)
}
