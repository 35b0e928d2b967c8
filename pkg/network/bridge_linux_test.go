package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/minke-io/minke/internal/netharness"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// childEnv marks a test process re-executed inside a private network (and
// mount) namespace: whatever the test creates dies with that process, and
// nothing it does touches the machine's network.
const childEnv = "MINKE_NETWORK_TEST_NETNS"

// inPrivateNetns re-runs the calling test in a fresh network namespace and
// returns false in the parent (which then only reports the child's
// result), true in the child.
func inPrivateNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == "1" {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			t.Fatalf("lo up: %v", err)
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("test in a private netns failed (%v):\n%s", err, out)
	}
	return false
}

// serveIn answers every TCP connection on :port inside the namespace at
// nsPath with name, until the test ends.
func serveIn(t *testing.T, nsPath string, port int, name string) {
	t.Helper()
	var l net.Listener
	err := netharness.InNetns(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listening in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, name)
			c.Close()
		}
	}()
}

// ask dials addr and returns what the server says.
func ask(addr string) (string, error) {
	c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func newTestManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Config{Subnet: netip.MustParsePrefix("172.29.250.0/24"), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestHostPortsAndTeardown(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	m := newTestManager(t)
	gw := m.pool.gateway.String()
	a, err := m.Attach("a", []PortMapping{{Protocol: TCP, Published: 8080, Target: 80}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Attach("b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Addr == b.Addr || !m.Subnet().Contains(a.Addr.Addr()) || a.Gateway.String() != gw {
		t.Fatalf("addresses a=%s b=%s gateway=%s subnet=%s", a.Addr, b.Addr, a.Gateway, m.Subnet())
	}
	serveIn(t, a.NetNSPath, 80, "a")
	serveIn(t, b.NetNSPath, 80, "b")

	if got, err := ask(gw + ":8080"); err != nil || got != "a" {
		t.Fatalf("published port 8080 on the node: %q, %v; want a", got, err)
	}
	if got, err := ask("127.0.0.1:8080"); err != nil || got != "a" {
		t.Fatalf("published port on 127.0.0.1: %q, %v; want a", got, err)
	}
	if got, err := ask(b.Addr.Addr().String() + ":80"); err != nil || got != "b" {
		t.Fatalf("container address directly: %q, %v; want b", got, err)
	}

	// Bad input: the same port again, and a port a node process listens on.
	if _, err := m.Attach("c", []PortMapping{{Protocol: TCP, Published: 8080, Target: 80}}); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("second container on 8080: %v, want ErrPortInUse", err)
	}
	l, err := net.Listen("tcp4", ":9090")
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Attach("c", []PortMapping{{Protocol: TCP, Published: 9090, Target: 80}})
	l.Close()
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("port a process listens on: %v, want ErrPortInUse", err)
	}
	if _, err := os.Stat(m.NetNSPath("c")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused attach left its netns: %v", err)
	}

	if err := m.Detach("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(vethName("a")); err == nil {
		t.Fatal("veth of a detached container still exists")
	}
	if got, err := ask(gw + ":8080"); err == nil {
		t.Fatalf("8080 still answers after detach: %q", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, m)
}

func TestIngressSpreadsOverBackends(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	m := newTestManager(t)
	var backends []netip.Addr
	for _, id := range []string{"x", "y", "z"} {
		ep, err := m.Attach(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		serveIn(t, ep.NetNSPath, 80, id)
		backends = append(backends, ep.Addr.Addr())
	}
	if err := m.SetIngress([]IngressRule{{Protocol: TCP, Published: 8000, Target: 80, Backends: backends}}); err != nil {
		t.Fatal(err)
	}
	gw := m.pool.gateway.String()
	seen := map[string]int{}
	for range 30 {
		got, err := ask(gw + ":8000")
		if err != nil {
			t.Fatal(err)
		}
		seen[got]++
	}
	// numgen inc: strict round robin.
	if seen["x"] != 10 || seen["y"] != 10 || seen["z"] != 10 {
		t.Fatalf("30 connections went %v; want 10 to each of x, y, z", seen)
	}
	// A host-mode port cannot take an ingress port.
	if _, err := m.Attach("w", []PortMapping{{Protocol: TCP, Published: 8000, Target: 80}}); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("host port over an ingress port: %v, want ErrPortInUse", err)
	}
	// Backends follow: only y left.
	if err := m.SetIngress([]IngressRule{{Protocol: TCP, Published: 8000, Target: 80, Backends: backends[1:2]}}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if got, err := ask(gw + ":8000"); err != nil || got != "y" {
			t.Fatalf("after backends changed: %q, %v; want y", got, err)
		}
	}
}

func TestVIPBalancesAndRejectsWithoutBackends(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	m, err := New(Config{Subnet: netip.MustParsePrefix("172.29.250.0/24"), StateDir: t.TempDir(),
		ServicePool: netip.MustParsePrefix("172.30.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	var backends []netip.Addr
	var client *Endpoint
	for _, id := range []string{"x", "y", "client"} {
		ep, err := m.Attach(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if id == "client" {
			client = ep
			continue
		}
		serveIn(t, ep.NetNSPath, 5000, id)
		backends = append(backends, ep.Addr.Addr())
	}
	vip := netip.MustParseAddr("172.30.0.5")
	if err := m.SetVIPs([]VIPRule{{VIP: vip, Backends: backends}, {VIP: netip.MustParseAddr("172.30.0.6")}}); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{client.NetNSPath, ""} { // a container, the node itself
		seen := map[string]int{}
		for range 10 {
			got, err := askFrom(t, from, vip.String()+":5000")
			if err != nil {
				t.Fatalf("VIP from %q: %v", from, err)
			}
			seen[got]++
		}
		if seen["x"] != 5 || seen["y"] != 5 {
			t.Fatalf("VIP from %q: %v; want 5 each to x and y", from, seen)
		}
	}
	// A VIP with no backend is refused at once, not routed off the node.
	start := time.Now()
	if _, err := askFrom(t, client.NetNSPath, "172.30.0.6:5000"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("VIP without backends: %v, want connection refused", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("VIP without backends took %v to fail", d)
	}
}

// askFrom is ask from inside the namespace at nsPath ("" for this one).
func askFrom(t *testing.T, nsPath, addr string) (string, error) {
	t.Helper()
	if nsPath == "" {
		return ask(addr)
	}
	var got string
	err := netharness.InNetns(nsPath, func() error {
		var err error
		got, err = ask(addr)
		return err
	})
	return got, err
}

func TestRoutesFollowTheirList(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	m := newTestManager(t)
	ep, err := m.Attach("r", nil)
	if err != nil {
		t.Fatal(err)
	}
	via := ep.Addr.Addr() // any neighbour on a connected link will do
	r1 := Route{Subnet: netip.MustParsePrefix("172.29.251.0/24"), Via: via}
	r2 := Route{Subnet: netip.MustParsePrefix("172.29.252.0/24"), Via: via}
	own := Route{Subnet: m.Subnet(), Via: via}
	if err := m.SetRoutes([]Route{r1, r2, own}); err != nil {
		t.Fatal(err)
	}
	if got := ourRoutes(t); len(got) != 2 || !got[r1.Subnet] || !got[r2.Subnet] {
		t.Fatalf("routes %v; want %s and %s", got, r1.Subnet, r2.Subnet)
	}
	if err := m.SetRoutes([]Route{r2}); err != nil {
		t.Fatal(err)
	}
	if got := ourRoutes(t); len(got) != 1 || !got[r2.Subnet] {
		t.Fatalf("routes %v; want only %s", got, r2.Subnet)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, m)
}

func ourRoutes(t *testing.T) map[netip.Prefix]bool {
	t.Helper()
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Prefix]bool{}
	for _, r := range rs {
		if p, ok := prefixOf(r.Dst); ok {
			out[p] = true
		}
	}
	return out
}

// assertNothingLeft checks the (private) namespace holds no link but lo, no
// nftables table, no route of ours and no netns file.
func assertNothingLeft(t *testing.T, m *Manager) {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Attrs().Name != "lo" {
			t.Errorf("link %s (%s) left", l.Attrs().Name, l.Type())
		}
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		t.Errorf("nftables table %s left", tb.Name)
	}
	if rs := ourRoutes(t); len(rs) > 0 {
		t.Errorf("routes left: %v", rs)
	}
	if ents, err := os.ReadDir(m.nsDir); err == nil && len(ents) > 0 {
		t.Errorf("netns files left: %d", len(ents))
	}
}

func TestRemoveLeftoversAfterAKilledNode(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	dir := t.TempDir()
	m, err := New(Config{Subnet: netip.MustParsePrefix("172.29.250.0/24"), StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach("a", []PortMapping{{Protocol: TCP, Published: 8080, Target: 80}}); err != nil {
		t.Fatal(err)
	}
	// The node dies: nothing of m is closed. Its container's namespace goes
	// with the container (here: unmounted by the cleanup of its mounts).
	if err := removeNetns(m.NetNSPath("a")); err != nil {
		t.Fatal(err)
	}
	if err := RemoveLeftovers(dir); err != nil {
		t.Fatal(err)
	}
	clustertestLikeWait(t, func() bool {
		links, _ := netlink.LinkList()
		return len(links) == 1 // lo
	})
	assertNothingLeft(t, m)
	if err := RemoveLeftovers(dir); err != nil {
		t.Fatalf("second call: %v", err)
	}
}

// clustertestLikeWait polls cond for up to 5s: the kernel destroys a
// namespace's veths asynchronously once it is unmounted.
func clustertestLikeWait(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(20 * time.Millisecond) // polling the kernel; re-checked above
	}
}

func TestUDPPublishedPort(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	m := newTestManager(t)
	ep, err := m.Attach("u", []PortMapping{{Protocol: UDP, Published: 5353, Target: 53}})
	if err != nil {
		t.Fatal(err)
	}
	var pc net.PacketConn
	if err := netharness.InNetns(ep.NetNSPath, func() error {
		var err error
		pc, err = net.ListenPacket("udp4", ":53")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	c, err := net.Dial("udp4", m.Gateway().String()+":5353")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "echo:hi" {
		t.Fatalf("UDP through published port 5353: %q, %v", buf[:n], err)
	}
	// The TCP port of the same number is not published.
	if _, err := ask(m.Gateway().String() + ":5353"); err == nil {
		t.Fatal("tcp/5353 answers; only udp/5353 is published")
	}
}
