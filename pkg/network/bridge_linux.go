package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// routeProtocol tags the routes this package installs (rtnetlink protocol
// numbers above RTPROT_STATIC are free for routing daemons).
const routeProtocol = netlink.RouteProtocol(77)

// Config configures a node's bridge network.
type Config struct {
	// Subnet is the node's container subnet; its first host address is the
	// gateway on the bridge. Required.
	Subnet netip.Prefix
	// Bridge is the bridge's name; default DefaultBridge(Subnet). The
	// nftables table has the same name.
	Bridge string
	// ServicePool is where service VIPs come from (optional): traffic to it
	// that no VIP rule catches is rejected instead of routed out.
	ServicePool netip.Prefix
	// StateDir holds the containers' network namespaces (StateDir/netns).
	// Required.
	StateDir string
	// Logger gets component=network; default discard.
	Logger *slog.Logger
}

// Manager owns a node's bridge, its containers' namespaces and veths, its
// nftables table and its routes to other nodes. Methods are safe for
// concurrent use.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	pool   *pool
	nsDir  string
	bridge netlink.Link

	mu        sync.Mutex
	endpoints map[string]*Endpoint
	ingress   []IngressRule
	vips      []VIPRule
	routes    []Route
}

// New creates (or adopts) the bridge, enables forwarding and writes the
// nftables table. Call Sweep before attaching containers.
func New(cfg Config) (*Manager, error) {
	if err := ValidateSubnet(cfg.Subnet); err != nil {
		return nil, err
	}
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("%w: Config.StateDir is required", ErrInvalid)
	}
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge(cfg.Subnet)
	}
	if len(cfg.Bridge) > 15 {
		return nil, fmt.Errorf("%w: bridge name %q is longer than 15 bytes", ErrInvalid, cfg.Bridge)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p, err := newPool(cfg.Subnet)
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: logger.With("component", "network", "bridge", cfg.Bridge), pool: p,
		nsDir: filepath.Join(cfg.StateDir, "netns"), endpoints: map[string]*Endpoint{}}
	if err := os.MkdirAll(m.nsDir, 0o700); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	if err := writeOwner(cfg.StateDir, cfg.Bridge); err != nil {
		return nil, err
	}
	if err := m.ensureBridge(); err != nil {
		return nil, err
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return nil, fmt.Errorf("network: enabling IPv4 forwarding: %w", err)
	}
	if err := m.sync(); err != nil {
		return nil, err
	}
	m.log.Info("bridge network ready", "subnet", cfg.Subnet, "gateway", p.gateway)
	return m, nil
}

// Attached counts the containers attached.
func (m *Manager) Attached() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.endpoints)
}

// Gateway is the bridge's address, the containers' default gateway.
func (m *Manager) Gateway() netip.Addr { return m.pool.gateway }

// Subnet is the node's container subnet.
func (m *Manager) Subnet() netip.Prefix { return m.cfg.Subnet }

// Bridge is the bridge's (and nftables table's) name.
func (m *Manager) Bridge() string { return m.cfg.Bridge }

func (m *Manager) ensureBridge() error {
	gw := netip.PrefixFrom(m.pool.gateway, m.cfg.Subnet.Bits())
	l, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("network: looking up bridge %s: %w", m.cfg.Bridge, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: m.cfg.Bridge}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("network: creating bridge %s: %w", m.cfg.Bridge, err)
		}
		if l, err = netlink.LinkByName(m.cfg.Bridge); err != nil {
			return fmt.Errorf("network: bridge %s: %w", m.cfg.Bridge, err)
		}
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return fmt.Errorf("%w: link %s exists and is a %s, not a bridge", ErrInvalid, m.cfg.Bridge, l.Type())
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("network: addresses of %s: %w", m.cfg.Bridge, err)
	}
	have := false
	for _, a := range addrs {
		p, _ := netip.AddrFromSlice(a.IP.To4())
		ones, _ := a.Mask.Size()
		if netip.PrefixFrom(p, ones) == gw {
			have = true
			continue
		}
		// An address from an earlier, different --bridge-subnet.
		if err := netlink.AddrDel(l, &a); err != nil {
			return fmt.Errorf("network: removing old address %s from %s: %w", a.IPNet, m.cfg.Bridge, err)
		}
	}
	if !have {
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(gw)}); err != nil {
			return fmt.Errorf("network: adding %s to %s: %w", gw, m.cfg.Bridge, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("network: bringing up %s: %w", m.cfg.Bridge, err)
	}
	// Published ports answer on 127.0.0.1 too: DNAT'd loopback packets may
	// then leave through the bridge (and only through it).
	localnet := "/proc/sys/net/ipv4/conf/" + m.cfg.Bridge + "/route_localnet"
	if err := os.WriteFile(localnet, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("network: enabling route_localnet on %s: %w", m.cfg.Bridge, err)
	}
	m.bridge = l
	if m.cfg.ServicePool.IsValid() {
		// The node's own connections to a VIP need a route before the
		// output hook's DNAT; hosts without a default route have none.
		// It goes away with the bridge.
		r := &netlink.Route{Dst: ipNet(m.cfg.ServicePool), LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_STATIC}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("network: route to the service VIPs %s: %w", m.cfg.ServicePool, err)
		}
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// vethName is the host end of a container's veth: "mk" and 11 hex digits
// of the container ID's hash (interface names have at most 15 bytes).
func vethName(id string) string {
	h := sha256.Sum256([]byte(id))
	return "mk" + hex.EncodeToString(h[:])[:11]
}

// NetNSPath is where a container's network namespace is mounted.
func (m *Manager) NetNSPath(id string) string { return filepath.Join(m.nsDir, id) }

// Attach creates container id's network namespace, its veth on the bridge
// with a fresh address, loopback, a default route, and the DNAT rules of
// ports (host mode). A port that another container or a listening process
// of the node holds fails with ErrPortInUse. On error nothing is left.
func (m *Manager) Attach(id string, ports []PortMapping) (ep *Endpoint, err error) {
	if id == "" || filepath.Base(id) != id || id == "." || id == ".." {
		return nil, fmt.Errorf("%w: container ID %q", ErrInvalid, id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.endpoints[id]; ok {
		return nil, fmt.Errorf("%w: container %s is attached already", ErrInvalid, id)
	}
	if err := m.checkPorts(ports); err != nil {
		return nil, err
	}
	addr, err := m.pool.allocate(id)
	if err != nil {
		return nil, err
	}
	ep = &Endpoint{ID: id, NetNSPath: m.NetNSPath(id), Addr: netip.PrefixFrom(addr, m.cfg.Subnet.Bits()),
		Gateway: m.pool.gateway, Ports: slices.Clone(ports)}
	defer func() {
		if err != nil {
			m.teardown(ep)
		}
	}()
	if err := createNetns(ep.NetNSPath); err != nil {
		return nil, err
	}
	if err := m.plumb(ep); err != nil {
		return nil, err
	}
	m.endpoints[id] = ep
	if err := m.sync(); err != nil {
		delete(m.endpoints, id)
		return nil, err
	}
	m.log.Info("container attached", "container_id", id, "addr", ep.Addr, "ports", len(ports))
	return ep, nil
}

// checkPorts refuses host ports held by another endpoint, an ingress rule,
// or a process listening on the node. Called with mu held.
func (m *Manager) checkPorts(ports []PortMapping) error {
	seen := map[PortMapping]bool{}
	for _, p := range ports {
		key := PortMapping{Protocol: p.Protocol, Published: p.Published}
		if p.Published == 0 || p.Target == 0 {
			return fmt.Errorf("%w: published port %s: ports must be 1-65535", ErrInvalid, p)
		}
		if seen[key] {
			return fmt.Errorf("%w: port %d/%s is published twice", ErrPortInUse, p.Published, p.Protocol)
		}
		seen[key] = true
		for _, ep := range m.endpoints {
			for _, q := range ep.Ports {
				if q.Protocol == p.Protocol && q.Published == p.Published {
					return fmt.Errorf("%w: port %d/%s on this node is published by container %s", ErrPortInUse, p.Published, p.Protocol, ep.ID)
				}
			}
		}
		for _, r := range m.ingress {
			if r.Protocol == p.Protocol && r.Published == p.Published {
				return fmt.Errorf("%w: port %d/%s is an ingress port of the cluster", ErrPortInUse, p.Published, p.Protocol)
			}
		}
		if err := probePort(p.Protocol, p.Published); err != nil {
			return fmt.Errorf("%w: port %d/%s on this node: %v", ErrPortInUse, p.Published, p.Protocol, err)
		}
	}
	return nil
}

// probePort fails when a process of the node listens on port: the DNAT
// rule would steal its traffic silently.
func probePort(p Protocol, port uint16) error {
	addr := ":" + strconv.Itoa(int(port))
	if p == UDP {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// plumb creates the veth pair with its peer inside the namespace, and
// configures both ends.
func (m *Manager) plumb(ep *Endpoint) error {
	nsh, err := netns.GetFromPath(ep.NetNSPath)
	if err != nil {
		return fmt.Errorf("network: opening netns %s: %w", ep.NetNSPath, err)
	}
	defer nsh.Close()
	host := vethName(ep.ID)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MasterIndex: m.bridge.Attrs().Index, MTU: m.bridge.Attrs().MTU},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(int(nsh))}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("network: creating veth %s: %w", host, err)
	}
	hl, err := netlink.LinkByName(host)
	if err != nil {
		return fmt.Errorf("network: veth %s: %w", host, err)
	}
	if err := netlink.LinkSetMaster(hl, m.bridge); err != nil {
		return fmt.Errorf("network: enslaving %s to %s: %w", host, m.cfg.Bridge, err)
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		return fmt.Errorf("network: bringing up %s: %w", host, err)
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return fmt.Errorf("network: netlink in netns %s: %w", ep.NetNSPath, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("network: bringing up lo in the container: %w", err)
	}
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("network: eth0 in the container: %w", err)
	}
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(ep.Addr)}); err != nil {
		return fmt.Errorf("network: adding %s to the container's eth0: %w", ep.Addr, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("network: bringing up the container's eth0: %w", err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IP(ep.Gateway.AsSlice())}); err != nil {
		return fmt.Errorf("network: default route via %s in the container: %w", ep.Gateway, err)
	}
	return nil
}

// Detach removes container id's veth, namespace, address and port rules.
// Detaching an unknown container removes whatever of it is left (after a
// worker restart) and is no error.
func (m *Manager) Detach(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, ok := m.endpoints[id]
	if !ok {
		ep = &Endpoint{ID: id, NetNSPath: m.NetNSPath(id)}
	}
	delete(m.endpoints, id)
	err := m.teardown(ep)
	if ok {
		if serr := m.sync(); serr != nil {
			err = errors.Join(err, serr)
		}
		m.log.Info("container detached", "container_id", id, "addr", ep.Addr)
	}
	return err
}

// teardown removes an endpoint's kernel objects and frees its address.
func (m *Manager) teardown(ep *Endpoint) error {
	var errs []error
	if l, err := netlink.LinkByName(vethName(ep.ID)); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("network: deleting veth of %s: %w", ep.ID, err))
		}
	}
	if err := removeNetns(ep.NetNSPath); err != nil {
		errs = append(errs, err)
	}
	if ep.Addr.IsValid() {
		m.pool.release(ep.Addr.Addr())
	}
	return errors.Join(errs...)
}

// SetIngress replaces the ingress rules (the cluster's published ports in
// ingress mode, with their current backends).
func (m *Manager) SetIngress(rules []IngressRule) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.EqualFunc(rules, m.ingress, func(a, b IngressRule) bool {
		return a.Protocol == b.Protocol && a.Published == b.Published && a.Target == b.Target && slices.Equal(a.Backends, b.Backends)
	}) {
		return nil
	}
	m.ingress = slices.Clone(rules)
	return m.sync()
}

// SetVIPs replaces the service VIP rules.
func (m *Manager) SetVIPs(vips []VIPRule) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.EqualFunc(vips, m.vips, func(a, b VIPRule) bool {
		return a.VIP == b.VIP && slices.Equal(a.Backends, b.Backends)
	}) {
		return nil
	}
	m.vips = slices.Clone(vips)
	return m.sync()
}

// SetRoutes makes the node's routes to other nodes' container subnets equal
// to routes; routes to this node's own subnet are skipped.
func (m *Manager) SetRoutes(routes []Route) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[netip.Prefix]netip.Addr{}
	for _, r := range routes {
		if r.Subnet.Overlaps(m.cfg.Subnet) || !r.Via.IsValid() {
			continue
		}
		want[r.Subnet.Masked()] = r.Via
	}
	have, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	})
	if err != nil {
		return fmt.Errorf("network: listing routes: %w", err)
	}
	var errs []error
	for _, r := range have {
		if r.Dst == nil {
			continue
		}
		p, ok := prefixOf(r.Dst)
		gw, _ := netip.AddrFromSlice(r.Gw.To4())
		if ok && want[p] == gw {
			delete(want, p)
			continue
		}
		if err := netlink.RouteDel(&r); err != nil {
			errs = append(errs, fmt.Errorf("network: deleting route to %s: %w", r.Dst, err))
		}
	}
	for p, via := range want {
		err := netlink.RouteReplace(&netlink.Route{Dst: ipNet(p), Gw: net.IP(via.AsSlice()), Protocol: routeProtocol})
		if err != nil {
			errs = append(errs, fmt.Errorf("network: route to %s via %s: %w", p, via, err))
		}
	}
	m.routes = slices.Clone(routes)
	return errors.Join(errs...)
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones).Masked(), true
}

// sync writes the nftables table from the endpoints and ingress rules.
// Called with mu held (or before m is shared).
func (m *Manager) sync() error {
	rs := ruleset{table: m.cfg.Bridge, bridge: m.cfg.Bridge, subnet: m.cfg.Subnet, vips: m.vips, pool: m.cfg.ServicePool}
	ids := make([]string, 0, len(m.endpoints))
	for id := range m.endpoints {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ep := m.endpoints[id]
		for _, p := range ep.Ports {
			rs.dnat = append(rs.dnat, dnatRule{Protocol: p.Protocol, Published: p.Published, Target: p.Target, Backends: []netip.Addr{ep.Addr.Addr()}})
		}
	}
	for _, r := range m.ingress {
		rs.dnat = append(rs.dnat, dnatRule(r))
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("network: nftables: %w", err)
	}
	defer c.CloseLasting()
	return rs.apply(c)
}

// Sweep removes the namespaces and veths of containers this node attached
// before (a previous worker process), except those in keep.
func (m *Manager) Sweep(keep map[string]bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ents, err := os.ReadDir(m.nsDir)
	if err != nil {
		return fmt.Errorf("network: sweep: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if keep[e.Name()] || m.endpoints[e.Name()] != nil {
			continue
		}
		m.log.Info("sweeping leftover container network", "container_id", e.Name())
		if err := m.teardown(&Endpoint{ID: e.Name(), NetNSPath: m.NetNSPath(e.Name())}); err != nil {
			errs = append(errs, err)
		}
	}
	// Veths whose namespace file is gone but that still hang on the bridge.
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("network: sweep: %w", err))...)
	}
	live := map[string]bool{}
	for id := range m.endpoints {
		live[vethName(id)] = true
	}
	for id := range keep {
		live[vethName(id)] = true
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == m.bridge.Attrs().Index && l.Type() == "veth" && !live[l.Attrs().Name] {
			if err := netlink.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("network: sweep: deleting %s: %w", l.Attrs().Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Close removes everything: every endpoint, the routes, the nftables table
// and the bridge. A worker leaves its network in place when it stops (its
// containers keep running); Close is for tearing a node's network down.
func (m *Manager) Close() error {
	m.mu.Lock()
	eps := m.endpoints
	m.endpoints = map[string]*Endpoint{}
	m.mu.Unlock()
	var errs []error
	for _, ep := range eps {
		errs = append(errs, m.teardown(ep))
	}
	errs = append(errs, m.Sweep(nil), m.SetRoutes(nil))
	if c, err := nftables.New(); err == nil {
		errs = append(errs, deleteTable(c, m.cfg.Bridge))
		_ = c.CloseLasting()
	} else {
		errs = append(errs, err)
	}
	if err := netlink.LinkDel(m.bridge); err != nil && !errors.Is(err, unix.ENODEV) {
		errs = append(errs, fmt.Errorf("network: deleting bridge %s: %w", m.cfg.Bridge, err))
	}
	_ = os.Remove(m.nsDir)
	_ = os.Remove(filepath.Join(m.cfg.StateDir, ownerFile))
	return errors.Join(errs...)
}
