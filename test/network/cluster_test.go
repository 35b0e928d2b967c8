//go:build linux

package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
	"github.com/minke-io/minke/internal/netharness"
)

const (
	readyTimeout = 30 * time.Second
	ctlTimeout   = 30 * time.Second
	apiPort      = "4242"
)

type node struct {
	name    string
	host    *netharness.Host
	dataDir string
	nodeID  string
	proc    *netharness.Proc
}

// cluster is one manager (host 0, no containers: it is the clients' host)
// and workers on hosts 1..n.
type cluster struct {
	t       testing.TB
	h       *netharness.Harness
	dir     string
	socket  string
	mgr     *node
	workers []*node
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network tests need root (namespaces, bridges, nftables)")
	}
	if bins.Manager == "" {
		t.Fatal("binaries not built (TestMain builds them)")
	}
}

func newCluster(t testing.TB, workers int) *cluster {
	t.Helper()
	requireRoot(t)
	h, dir := clustertest.NewHarness(t, workers+1, "mknet")
	c := &cluster{t: t, h: h, dir: dir, socket: filepath.Join(dir, "m.sock")}
	c.mgr = &node{name: "m0", host: h.Host(0), dataDir: filepath.Join(dir, "m0")}
	c.mgr.proc = c.mgr.host.Start("m0", bins.Manager, "--data-dir", c.mgr.dataDir,
		"--listen-addr", net.JoinHostPort(c.mgr.host.IP(), apiPort), "--control-socket", c.socket, "--hostname", "m0")
	c.waitReady(c.mgr)
	tok := strings.TrimSpace(c.ctl("cluster", "join-token", "worker"))
	for i := 1; i <= workers; i++ {
		w := &node{name: fmt.Sprintf("w%d", i), host: h.Host(i)}
		w.dataDir = filepath.Join(dir, w.name)
		w.proc = w.host.Start(w.name, bins.Worker, "--data-dir", w.dataDir,
			"--join", net.JoinHostPort(c.mgr.host.IP(), apiPort), "--token", tok,
			"--advertise-addr", w.host.IP(), "--hostname", w.name)
		c.workers = append(c.workers, w)
		c.waitReady(w)
	}
	out, err := c.mgr.host.Exec(ctlTimeout, bins.Swarmctl, "--host", c.socket, "image", "push", bins.HelloTar)
	if err != nil {
		t.Fatalf("image push: %v\n%s", err, out)
	}
	return c
}

func (c *cluster) waitReady(n *node) {
	c.t.Helper()
	clustertest.Eventually(c.t, readyTimeout, n.name+" READY", func() (bool, string) {
		if !n.proc.Running() {
			c.t.Fatalf("%s exited: %v\n%s", n.name, n.proc.Wait(0), clustertest.LastRun(n.proc.Log()))
		}
		if n.nodeID == "" {
			b, err := os.ReadFile(filepath.Join(n.dataDir, "node-id"))
			if err != nil {
				return false, err.Error()
			}
			n.nodeID = strings.TrimSpace(string(b))
		}
		out, err := c.tryCtl("node", "ls", "--format", "json")
		if err != nil {
			return false, err.Error()
		}
		nodes, err := clustertest.DecodeArray(out, func() *minkepb.Node { return new(minkepb.Node) })
		if err != nil {
			return false, err.Error()
		}
		for _, nd := range nodes {
			if nd.GetMeta().GetId() == n.nodeID {
				return nd.GetStatus().GetState() == minkepb.NodeStatus_READY, nd.GetStatus().GetState().String()
			}
		}
		return false, "not listed"
	})
}

func (c *cluster) tryCtl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Swarmctl, append([]string{"--host", c.socket}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("swarmctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (c *cluster) ctl(args ...string) string {
	c.t.Helper()
	out, err := c.tryCtl(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *cluster) tasks(service string) []*minkepb.Task {
	c.t.Helper()
	ts, err := clustertest.DecodeArray(c.ctl("service", "ps", service, "--format", "json"), func() *minkepb.Task { return new(minkepb.Task) })
	if err != nil {
		c.t.Fatal(err)
	}
	return ts
}

// running returns the IDs of service's running tasks once exactly want of
// them run and no task meant to run is in another state.
func (c *cluster) running(service string, want int) map[string]*minkepb.Task {
	c.t.Helper()
	var out map[string]*minkepb.Task
	clustertest.Eventually(c.t, 60*time.Second, fmt.Sprintf("%s: %d running", service, want), func() (bool, string) {
		out = map[string]*minkepb.Task{}
		for _, t := range c.tasks(service) {
			if t.GetDesiredState() == minkepb.TaskState_RUNNING && t.GetStatus().GetState() != minkepb.TaskState_RUNNING {
				return false, fmt.Sprintf("task %s is %s: %s", t.GetMeta().GetId(), t.GetStatus().GetState(), t.GetStatus().GetErr())
			}
			if t.GetStatus().GetState() == minkepb.TaskState_RUNNING && t.GetDesiredState() == minkepb.TaskState_RUNNING {
				out[t.GetMeta().GetId()] = t
			}
		}
		return len(out) == want, fmt.Sprintf("%d running", len(out))
	})
	return out
}

// get sends one HTTP/1.0 request from host from to addr and returns the
// body's first line (hello answers with its hostname).
func get(from *netharness.Host, addr string) (string, error) {
	return getWithin(from, addr, 3*time.Second)
}

func getWithin(from *netharness.Host, addr string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := from.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	_, body, ok := strings.Cut(string(b), "\r\n\r\n")
	if !ok {
		return "", fmt.Errorf("no HTTP body in %q", b)
	}
	return strings.TrimSpace(body), nil
}

// inHost runs fn on a thread inside host's network namespace.
func inHost(host *netharness.Host, fn func() error) error {
	return netharness.InNetns(host.NetnsPath(), fn)
}

// netState describes what of the container network a worker host holds:
// veths on bridges, DNAT rules, and netns files under its data dir.
type netState struct {
	veths, dnatRules, netnsFiles int
}

func (c *cluster) netState(w *node) netState {
	c.t.Helper()
	var st netState
	var err error
	// A dump that races a link change is interrupted (the kernel says so):
	// read again, a bounded number of times.
	for range 5 {
		if st, err = c.readNetState(w); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		c.t.Fatalf("reading %s's network: %v", w.name, err)
	}
	return st
}

func (c *cluster) readNetState(w *node) (netState, error) {
	var st netState
	err := inHost(w.host, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.Type() == "veth" && strings.HasPrefix(l.Attrs().Name, "mk") {
				st.veths++
			}
		}
		conn, err := nftables.New()
		if err != nil {
			return err
		}
		tables, err := conn.ListTables()
		if err != nil {
			return err
		}
		chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
		if err != nil {
			return err
		}
		for _, tb := range tables {
			for _, ch := range chains {
				if ch.Name != "prerouting" || ch.Table.Name != tb.Name {
					continue
				}
				rules, err := conn.GetRules(tb, ch)
				if err != nil {
					return err
				}
				st.dnatRules += len(rules)
			}
		}
		return nil
	})
	ents, _ := os.ReadDir(filepath.Join(w.dataDir, "network", "netns"))
	st.netnsFiles = len(ents)
	return st, err
}

// listenOn holds port open on host (a process of the node holding it)
// until the test ends.
func listenOn(t *testing.T, host *netharness.Host, port int) {
	t.Helper()
	var l net.Listener
	err := inHost(host, func() error {
		var err error
		l, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}

// taskByID finds a task of service by its full ID (a container hostname).
func (c *cluster) taskByID(service, id string) *minkepb.Task {
	c.t.Helper()
	for _, t := range c.tasks(service) {
		if t.GetMeta().GetId() == id {
			return t
		}
	}
	return nil
}

// vip is a service's virtual IP.
func (c *cluster) vip(service string) string {
	c.t.Helper()
	svcs, err := clustertest.DecodeArray(c.ctl("service", "inspect", service, "--format", "json"), func() *minkepb.Service { return new(minkepb.Service) })
	if err != nil || len(svcs) != 1 || svcs[0].GetEndpoint().GetVirtualIp() == "" {
		c.t.Fatalf("service %s: no VIP (%v)", service, err)
	}
	return svcs[0].GetEndpoint().GetVirtualIp()
}
