package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/minke-io/minke/internal/netharness"
)

// overlayNode is one netharness host running an Overlays, with containers
// that are bare network namespaces.
type overlayNode struct {
	t    *testing.T
	host *netharness.Host
	dir  string
	o    *Overlays
}

func newOverlayNode(t *testing.T, host *netharness.Host) *overlayNode {
	t.Helper()
	n := &overlayNode{t: t, host: host, dir: t.TempDir()}
	n.o = n.open()
	return n
}

// open starts an Overlays on the node's state (again, after a "restart").
func (n *overlayNode) open() *Overlays {
	n.t.Helper()
	o, err := NewOverlays(OverlayConfig{StateDir: n.dir, LocalAddr: netip.MustParseAddr(n.host.IP()), UnderlayNetNS: n.host.NetnsPath()})
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { _ = o.Close() })
	return o
}

func (n *overlayNode) addr() netip.Addr { return netip.MustParseAddr(n.host.IP()) }

// container makes a network namespace standing in for a container.
func (n *overlayNode) container(id string) string {
	n.t.Helper()
	path := filepath.Join(n.dir, "ctr-"+id)
	if err := createNetns(path); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { _ = removeNetns(path) })
	if err := netharness.InNetns(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		n.t.Fatal(err)
	}
	return path
}

// whoami answers every TCP connection on :port inside nsPath with name and
// the caller's address ("name from 10.0.0.2").
func whoami(t *testing.T, nsPath string, port int, name string) {
	t.Helper()
	var l net.Listener
	if err := netharness.InNetns(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listening in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = io.WriteString(c, name+" from "+host)
			c.Close()
		}
	}()
}

// askQuick is ask with a short timeout, for paths that must not exist.
func askQuick(nsPath, addr string) (string, error) {
	var got string
	err := netharness.InNetns(nsPath, func() error {
		c, err := net.DialTimeout("tcp4", addr, 700*time.Millisecond)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	return got, err
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func overlayDef(id string, vni uint32, subnet string, peers ...OverlayPeer) OverlayNetwork {
	s := pfx(subnet)
	return OverlayNetwork{ID: id, Name: "net-" + id, Subnet: s, Gateway: s.Addr().Next(), VNI: vni, Peers: peers}
}

func peer(addr string, n *overlayNode) OverlayPeer {
	return OverlayPeer{Addr: pfx(addr).Addr(), NodeAddr: n.addr()}
}

func mustSet(t *testing.T, nets []OverlayNetwork, nodes ...*overlayNode) {
	t.Helper()
	for _, n := range nodes {
		if err := n.o.Set(nets); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOverlayAcrossHosts(t *testing.T) {
	h := netharness.New(t, 2)
	n0, n1 := newOverlayNode(t, h.Host(0)), newOverlayNode(t, h.Host(1))
	a := overlayDef("neta", 4242, "192.168.77.0/24", peer("192.168.77.2/24", n0), peer("192.168.77.3/24", n1))
	mustSet(t, []OverlayNetwork{a}, n0, n1)
	c0, c1 := n0.container("c0"), n1.container("c1")
	if err := n0.o.Attach("c0", c0, []OverlayAttachment{{NetworkID: "neta", Addr: pfx("192.168.77.2/24")}}); err != nil {
		t.Fatal(err)
	}
	if err := n1.o.Attach("c1", c1, []OverlayAttachment{{NetworkID: "neta", Addr: pfx("192.168.77.3/24")}}); err != nil {
		t.Fatal(err)
	}
	whoami(t, c0, 80, "c0")
	whoami(t, c1, 80, "c1")
	// Both ways, by address; the callee sees the caller's overlay address.
	if got, err := askFrom(t, c0, "192.168.77.3:80"); err != nil || got != "c1 from 192.168.77.2" {
		t.Fatalf("c0 -> c1 over the overlay: %q, %v", got, err)
	}
	if got, err := askFrom(t, c1, "192.168.77.2:80"); err != nil || got != "c0 from 192.168.77.3" {
		t.Fatalf("c1 -> c0 over the overlay: %q, %v", got, err)
	}
	// The container's overlay link: the derived MAC, the reduced MTU, and
	// only the on-link route (the default route is not the overlay's).
	if err := netharness.InNetns(c0, func() error {
		l, err := netlink.LinkByName("eth1")
		if err != nil {
			return err
		}
		if got := l.Attrs().HardwareAddr.String(); got != "02:42:c0:a8:4d:02" {
			return fmt.Errorf("eth1 MAC %s", got)
		}
		if l.Attrs().MTU != n0.o.MTU() || n0.o.MTU() != 1500-vxlanOverhead {
			return fmt.Errorf("eth1 MTU %d, overlay MTU %d", l.Attrs().MTU, n0.o.MTU())
		}
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() != "192.168.77.0/24" {
				return fmt.Errorf("unexpected route %s", r)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The VXLAN device sits in the network's namespace, not the node's.
	if out, err := n0.host.Exec(5*time.Second, "ip", "-o", "link", "show", "type", "vxlan"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("VXLAN links in the node's namespace: %q, %v", out, err)
	}

	// A peer leaving the managers' state is gone from the other node at
	// once: no forwarding or neighbour entry keeps its address reachable.
	mustSet(t, []OverlayNetwork{overlayDef("neta", 4242, "192.168.77.0/24", peer("192.168.77.2/24", n0))}, n0)
	if got, err := askQuick(c0, "192.168.77.3:80"); err == nil {
		t.Fatalf("c1 still reachable after leaving the peers: %q", got)
	}
	mustSet(t, []OverlayNetwork{a}, n0)
	if got, err := askFrom(t, c0, "192.168.77.3:80"); err != nil || got != "c1 from 192.168.77.2" {
		t.Fatalf("c0 -> c1 after the peer came back: %q, %v", got, err)
	}

	// Removal: the last container leaving takes the network with it.
	for _, step := range []struct {
		n  *overlayNode
		id string
	}{{n0, "c0"}, {n1, "c1"}} {
		if err := step.n.o.Detach(step.id); err != nil {
			t.Fatal(err)
		}
		assertOverlayGone(t, step.n)
	}
	if err := netharness.InNetns(c0, func() error {
		if _, err := netlink.LinkByName("eth1"); err == nil {
			return errors.New("eth1 left in the container")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// assertOverlayGone checks that node n holds no overlay namespace, mount
// or VXLAN device.
func assertOverlayGone(t *testing.T, n *overlayNode) {
	t.Helper()
	if ids := n.o.Networks(); len(ids) > 0 {
		t.Errorf("overlay networks left on %s: %v", n.host.Name(), ids)
	}
	if ents, _ := os.ReadDir(filepath.Join(n.dir, "overlay")); len(ents) > 0 {
		t.Errorf("overlay netns files left on %s: %d", n.host.Name(), len(ents))
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), filepath.Join(n.dir, "overlay")+"/") {
		t.Errorf("overlay netns mounts left on %s", n.host.Name())
	}
	if out, err := n.host.Exec(5*time.Second, "ip", "-o", "link", "show", "type", "vxlan"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("VXLAN links in %s: %q, %v", n.host.Name(), out, err)
	}
	if out, err := n.host.Exec(5*time.Second, "ss", "-Huan", "sport", "= :4789"); err == nil && strings.TrimSpace(out) != "" {
		t.Errorf("VXLAN socket still open in %s: %q", n.host.Name(), out)
	}
}

func TestOverlaysIsolated(t *testing.T) {
	h := netharness.New(t, 2)
	n0, n1 := newOverlayNode(t, h.Host(0)), newOverlayNode(t, h.Host(1))
	// Two networks on the SAME subnet: only the VNI and the namespaces
	// keep them apart, so nothing but the data plane's isolation is tested.
	a := overlayDef("neta", 4301, "192.168.78.0/24", peer("192.168.78.2/24", n0), peer("192.168.78.3/24", n1))
	b := overlayDef("netb", 4302, "192.168.78.0/24", peer("192.168.78.4/24", n0), peer("192.168.78.5/24", n1))
	mustSet(t, []OverlayNetwork{a, b}, n0, n1)
	ctrs := map[string]string{}
	for _, c := range []struct {
		n        *overlayNode
		id, net_ string
		addr     string
	}{{n0, "a0", "neta", "192.168.78.2/24"}, {n1, "a1", "neta", "192.168.78.3/24"}, {n0, "b0", "netb", "192.168.78.4/24"}, {n1, "b1", "netb", "192.168.78.5/24"}} {
		ctrs[c.id] = c.n.container(c.id)
		if err := c.n.o.Attach(c.id, ctrs[c.id], []OverlayAttachment{{NetworkID: c.net_, Addr: pfx(c.addr)}}); err != nil {
			t.Fatal(err)
		}
		whoami(t, ctrs[c.id], 80, c.id)
	}
	// Within each network: reachable, locally and across the hosts.
	for _, c := range []struct{ from, to, want string }{
		{"a0", "192.168.78.3:80", "a1 from 192.168.78.2"}, {"b1", "192.168.78.4:80", "b0 from 192.168.78.5"},
	} {
		if got, err := askFrom(t, ctrs[c.from], c.to); err != nil || got != c.want {
			t.Fatalf("%s -> %s: %q, %v; want %q", c.from, c.to, got, err, c.want)
		}
	}
	// Across networks: nothing, either way, on one host or across. b0 even
	// knows a1's MAC (a static neighbour entry, as a spoofing container
	// could set): the frame still has no VXLAN forwarding entry in b.
	if err := netharness.InNetns(ctrs["b0"], func() error {
		l, err := netlink.LinkByName("eth1")
		if err != nil {
			return err
		}
		a1 := netip.MustParseAddr("192.168.78.3")
		return netlink.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: net.IP(a1.AsSlice()), HardwareAddr: overlayMAC(a1)})
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to string }{
		{"b0", "192.168.78.3:80"}, {"b0", "192.168.78.2:80"}, {"a1", "192.168.78.5:80"}, {"a0", "192.168.78.4:80"}, {"a1", "192.168.78.4:80"},
	} {
		if got, err := askQuick(ctrs[c.from], c.to); err == nil {
			t.Errorf("%s reached %s across networks: %q", c.from, c.to, got)
		}
	}
	// From the hosts themselves: the overlay addresses are not theirs to
	// reach, even with a route pointing at the underlay.
	for i, n := range []*overlayNode{n0, n1} {
		if _, err := n.host.Exec(5*time.Second, "ip", "route", "add", "192.168.78.0/24", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
		conn, err := n.host.Dial(ctxTimeout(t, 700*time.Millisecond), "tcp4", "192.168.78.3:80")
		if err == nil {
			conn.Close()
			t.Errorf("host %d reached an overlay address", i)
		}
	}
	if err := n0.o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n1.o.Close(); err != nil {
		t.Fatal(err)
	}
	assertOverlayGone(t, n0)
	assertOverlayGone(t, n1)
}

func TestOverlayVIPBalancesInTheClient(t *testing.T) {
	h := netharness.New(t, 2)
	n0, n1 := newOverlayNode(t, h.Host(0)), newOverlayNode(t, h.Host(1))
	vip := netip.MustParseAddr("192.168.79.100")
	a := overlayDef("neta", 4401, "192.168.79.0/24", peer("192.168.79.2/24", n0), peer("192.168.79.3/24", n1), peer("192.168.79.4/24", n0))
	a.VIPs = []VIPRule{{VIP: vip, Backends: []netip.Addr{netip.MustParseAddr("192.168.79.3"), netip.MustParseAddr("192.168.79.4")}}}
	mustSet(t, []OverlayNetwork{a}, n0, n1)
	ctrs := map[string]string{}
	for _, c := range []struct {
		n        *overlayNode
		id, addr string
	}{{n0, "client", "192.168.79.2/24"}, {n1, "s1", "192.168.79.3/24"}, {n0, "s2", "192.168.79.4/24"}} {
		ctrs[c.id] = c.n.container(c.id)
		if err := c.n.o.Attach(c.id, ctrs[c.id], []OverlayAttachment{{NetworkID: "neta", Addr: pfx(c.addr)}}); err != nil {
			t.Fatal(err)
		}
		whoami(t, ctrs[c.id], 80, c.id)
	}
	seen := map[string]int{}
	for range 6 {
		got, err := askFrom(t, ctrs["client"], "192.168.79.100:80")
		if err != nil {
			t.Fatal(err)
		}
		seen[got]++
	}
	// Round robin over both backends, which see the client's own address.
	if seen["s1 from 192.168.79.2"] != 3 || seen["s2 from 192.168.79.2"] != 3 {
		t.Fatalf("answers through the VIP: %v", seen)
	}
	// A backend leaves: the next connections go to the other only.
	a.VIPs[0].Backends = a.VIPs[0].Backends[:1]
	mustSet(t, []OverlayNetwork{a}, n0)
	for range 3 {
		if got, err := askFrom(t, ctrs["client"], "192.168.79.100:80"); err != nil || got != "s1 from 192.168.79.2" {
			t.Fatalf("VIP with one backend: %q, %v", got, err)
		}
	}
	// No backend: refused at once, not left to time out.
	a.VIPs[0].Backends = nil
	mustSet(t, []OverlayNetwork{a}, n0)
	start := time.Now()
	if got, err := askFrom(t, ctrs["client"], "192.168.79.100:80"); err == nil || !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("VIP without backends: %q, %v; want connection refused", got, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("VIP without backends took %v to fail", d)
	}
	// Detaching removes the container's VIP table with its links.
	if err := n0.o.Detach("client"); err != nil {
		t.Fatal(err)
	}
	if tables := nftTablesIn(t, ctrs["client"]); len(tables) > 0 {
		t.Fatalf("nftables tables left in the detached container: %v", tables)
	}
}

func TestOverlayReadoptedAfterRestart(t *testing.T) {
	h := netharness.New(t, 2)
	n0, n1 := newOverlayNode(t, h.Host(0)), newOverlayNode(t, h.Host(1))
	a := overlayDef("neta", 4501, "192.168.80.0/24", peer("192.168.80.2/24", n0), peer("192.168.80.3/24", n1))
	mustSet(t, []OverlayNetwork{a}, n0, n1)
	keepNS, goneNS, c1 := n0.container("keep"), n0.container("gone"), n1.container("c1")
	attach := func(n *overlayNode, id, ns, addr string) {
		if err := n.o.Attach(id, ns, []OverlayAttachment{{NetworkID: "neta", Addr: pfx(addr)}}); err != nil {
			t.Fatal(err)
		}
	}
	attach(n0, "keep", keepNS, "192.168.80.2/24")
	attach(n0, "gone", goneNS, "192.168.80.4/24")
	attach(n1, "c1", c1, "192.168.80.3/24")
	whoami(t, c1, 80, "c1")

	// The worker process of n0 dies (nothing closed) and a new one starts
	// on its state: "keep" is re-adopted, "gone" ended meanwhile.
	n0.o.closeHandles()
	n0.o = n0.open()
	if got := n0.o.Networks(); len(got) != 1 || got[0] != "neta" {
		t.Fatalf("networks found after restart: %v", got)
	}
	if err := n0.o.Sweep(map[string]bool{"keep": true}); err != nil {
		t.Fatal(err)
	}
	mustSet(t, []OverlayNetwork{a}, n0)
	if err := n0.o.Adopt("keep", keepNS, []OverlayAttachment{{NetworkID: "neta", Addr: pfx("192.168.80.2/24")}}); err != nil {
		t.Fatal(err)
	}
	if got, err := askFrom(t, keepNS, "192.168.80.3:80"); err != nil || got != "c1 from 192.168.80.2" {
		t.Fatalf("re-adopted container -> c1: %q, %v", got, err)
	}
	if err := netharness.InNetns(goneNS, func() error {
		if _, err := netlink.LinkByName("eth1"); err == nil {
			return errors.New("swept container still has eth1")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := n0.o.Detach("keep"); err != nil {
		t.Fatal(err)
	}
	assertOverlayGone(t, n0)
}

func TestOverlayAttachRefusesBadInput(t *testing.T) {
	h := netharness.New(t, 1)
	n0 := newOverlayNode(t, h.Host(0))
	mustSet(t, []OverlayNetwork{overlayDef("neta", 4601, "192.168.81.0/24")}, n0)
	if err := n0.o.Set([]OverlayNetwork{overlayDef("bad", 0, "192.168.82.0/24")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("vni 0: %v, want ErrInvalid", err)
	}
	mustSet(t, []OverlayNetwork{overlayDef("neta", 4601, "192.168.81.0/24")}, n0)
	ns := n0.container("c")
	for _, c := range []struct {
		name string
		atts []OverlayAttachment
	}{
		{"unknown network", []OverlayAttachment{{NetworkID: "nope", Addr: pfx("192.168.81.2/24")}}},
		{"address outside the subnet", []OverlayAttachment{{NetworkID: "neta", Addr: pfx("192.168.83.2/24")}}},
		{"wrong prefix length", []OverlayAttachment{{NetworkID: "neta", Addr: pfx("192.168.81.2/16")}}},
		{"second fails after first", []OverlayAttachment{{NetworkID: "neta", Addr: pfx("192.168.81.2/24")}, {NetworkID: "nope", Addr: pfx("192.168.81.3/24")}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := n0.o.Attach("c", ns, c.atts); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Attach: %v, want ErrInvalid", err)
			}
			// Nothing half-created.
			assertOverlayGone(t, n0)
			if n0.o.Attached() != 0 {
				t.Fatal("container recorded as attached")
			}
		})
	}
}

func nftTablesIn(t *testing.T, nsPath string) []string {
	t.Helper()
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tb := range tables {
		out = append(out, tb.Name)
	}
	return out
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRemoveLeftoversRemovesOverlays(t *testing.T) {
	h := netharness.New(t, 1)
	n0 := newOverlayNode(t, h.Host(0))
	mustSet(t, []OverlayNetwork{overlayDef("neta", 4701, "192.168.84.0/24")}, n0)
	ns := n0.container("c")
	if err := n0.o.Attach("c", ns, []OverlayAttachment{{NetworkID: "neta", Addr: pfx("192.168.84.2/24")}}); err != nil {
		t.Fatal(err)
	}
	// The worker dies with nothing closed; an operator (or a test) cleans.
	n0.o.closeHandles()
	if err := RemoveLeftovers(n0.dir); err != nil {
		t.Fatal(err)
	}
	n0.o = n0.open()
	assertOverlayGone(t, n0)
}
