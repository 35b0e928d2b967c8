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
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Link names inside an overlay network's namespace, which holds nothing
// else, so fixed names never collide.
const (
	overlayBridge = "br0"
	overlayVXLAN  = "vxlan0"
)

// OverlayConfig configures a node's overlay networks.
type OverlayConfig struct {
	// StateDir is the node's network state directory (as Config.StateDir);
	// the networks' namespaces are mounted under StateDir/overlay.
	StateDir string
	// LocalAddr is the node's underlay address: the VXLAN devices' source,
	// and how the node recognises its own peers. Required.
	LocalAddr netip.Addr
	// Port is the VXLAN UDP port; default VXLANPort.
	Port int
	// UnderlayNetNS is the path of the network namespace the VXLAN sockets
	// live in; default the caller's (the node's own).
	UnderlayNetNS string
	// Logger gets component=overlay; default discard.
	Logger *slog.Logger
}

// Overlays owns a node's overlay networks. Each network with a container of
// the node on it is a network namespace of its own (mounted at
// StateDir/overlay/<network id>) holding a bridge and a VXLAN device whose
// UDP socket stays in the node's namespace. Containers join with a veth
// whose other end (eth1, eth2, …) is in the container's namespace with the
// overlay address and only the subnet's on-link route. Nothing routes
// between that namespace and the node or another network, so networks are
// isolated by construction. Methods are safe for concurrent use.
type Overlays struct {
	cfg       OverlayConfig
	log       *slog.Logger
	dir       string
	underlay  netns.NsHandle
	uh        *netlink.Handle
	mtu       int // overlay links' MTU
	vtepIndex int // the underlay link holding LocalAddr, 0 if none

	mu        sync.Mutex
	nets      map[string]OverlayNetwork // by ID, from the last Set
	sandboxes map[string]*sandbox       // by network ID; exist while members do
	endpoints map[string]*overlayEndpoint
}

// sandbox is one overlay network's namespace on this node.
type sandbox struct {
	id      string
	path    string
	vni     uint32
	ns      netns.NsHandle
	h       *netlink.Handle
	bridge  netlink.Link
	vxlan   netlink.Link
	members map[string]bool // container IDs
}

// overlayEndpoint is a container's set of overlay attachments.
type overlayEndpoint struct {
	id     string
	nsPath string
	atts   []OverlayAttachment
	vips   []VIPRule // as last programmed into its namespace
	vipsOK bool
}

// NewOverlays prepares the node's overlay networks and opens the network
// namespaces an earlier worker process left (call Sweep once the
// re-adopted containers are known).
func NewOverlays(cfg OverlayConfig) (*Overlays, error) {
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("%w: OverlayConfig.StateDir is required", ErrInvalid)
	}
	if !cfg.LocalAddr.Is4() {
		return nil, fmt.Errorf("%w: OverlayConfig.LocalAddr %q: want the node's IPv4 underlay address", ErrInvalid, cfg.LocalAddr)
	}
	if cfg.Port == 0 {
		cfg.Port = VXLANPort
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o := &Overlays{cfg: cfg, log: logger.With("component", "overlay"), dir: filepath.Join(cfg.StateDir, "overlay"),
		nets: map[string]OverlayNetwork{}, sandboxes: map[string]*sandbox{}, endpoints: map[string]*overlayEndpoint{}}
	var err error
	if cfg.UnderlayNetNS != "" {
		o.underlay, err = netns.GetFromPath(cfg.UnderlayNetNS)
	} else {
		o.underlay, err = netns.Get()
	}
	if err != nil {
		return nil, fmt.Errorf("network: underlay netns: %w", err)
	}
	if o.uh, err = netlink.NewHandleAt(o.underlay); err != nil {
		o.underlay.Close()
		return nil, fmt.Errorf("network: netlink in the underlay netns: %w", err)
	}
	o.mtu, o.vtepIndex = 1500-vxlanOverhead, 0
	if l := o.linkWithAddr(cfg.LocalAddr); l != nil {
		o.mtu, o.vtepIndex = l.Attrs().MTU-vxlanOverhead, l.Attrs().Index
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		o.closeHandles()
		return nil, fmt.Errorf("network: %w", err)
	}
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		o.closeHandles()
		return nil, fmt.Errorf("network: %w", err)
	}
	for _, e := range ents {
		sb, err := o.openSandbox(e.Name())
		if err != nil {
			o.log.Warn("removing a broken overlay namespace", "network_id", e.Name(), "err", err)
			if err := destroySandboxAt(filepath.Join(o.dir, e.Name())); err != nil {
				o.log.Warn("removing overlay namespace failed", "network_id", e.Name(), "err", err)
			}
			continue
		}
		o.sandboxes[sb.id] = sb
	}
	return o, nil
}

func (o *Overlays) closeHandles() {
	o.uh.Close()
	o.underlay.Close()
}

// linkWithAddr is the underlay link holding a, or nil.
func (o *Overlays) linkWithAddr(a netip.Addr) netlink.Link {
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return o.uh.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil
	}
	for _, ad := range addrs {
		if x, ok := netip.AddrFromSlice(ad.IP.To4()); ok && x == a {
			l, err := o.uh.LinkByIndex(ad.LinkIndex)
			if err == nil {
				return l
			}
		}
	}
	return nil
}

// MTU is the overlay links' MTU (the underlay link's minus VXLAN's 50).
func (o *Overlays) MTU() int { return o.mtu }

// NetNSPath is where network id's namespace is mounted on this node.
func (o *Overlays) NetNSPath(id string) string { return filepath.Join(o.dir, id) }

// Networks are the IDs of the networks that have a namespace on this node.
func (o *Overlays) Networks() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := make([]string, 0, len(o.sandboxes))
	for id := range o.sandboxes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Set replaces the overlay networks' definitions, peers and VIPs, and
// reprograms the forwarding and neighbour entries of every network present
// on the node and the VIP rules of every attached container. Networks
// without a container here are only remembered (Attach creates them).
func (o *Overlays) Set(nets []OverlayNetwork) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	next := make(map[string]OverlayNetwork, len(nets))
	for _, n := range nets {
		if err := n.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		next[n.ID] = n
	}
	changed := map[string]bool{}
	for id, n := range next {
		if old, ok := o.nets[id]; !ok || !old.equal(n) {
			changed[id] = true
		}
	}
	o.nets = next
	for id, sb := range o.sandboxes {
		n, ok := next[id]
		if !ok || !changed[id] {
			continue
		}
		if err := sb.programPeers(o.cfg.LocalAddr, n); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ep := range o.endpoints {
		if err := o.programEndpointVIPs(ep); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Attach connects container id (its namespace at nsPath) to each network
// of atts, in order as eth1, eth2, …, creating a network's namespace,
// bridge and VXLAN device when it is the first on the node. The networks
// must be known from Set. On error nothing of the container's overlay
// attachments is left.
func (o *Overlays) Attach(id, nsPath string, atts []OverlayAttachment) (err error) {
	if len(atts) == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.endpoints[id]; ok {
		return fmt.Errorf("%w: container %s is attached to overlays already", ErrInvalid, id)
	}
	ep := &overlayEndpoint{id: id, nsPath: nsPath}
	o.endpoints[id] = ep
	defer func() {
		if err != nil {
			err = errors.Join(err, o.detachLocked(id))
		}
	}()
	cns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("network: opening container netns %s: %w", nsPath, err)
	}
	defer cns.Close()
	ch, err := netlink.NewHandleAt(cns)
	if err != nil {
		return fmt.Errorf("network: netlink in container netns %s: %w", nsPath, err)
	}
	defer ch.Close()
	seen := map[string]bool{}
	for i, att := range atts {
		n, ok := o.nets[att.NetworkID]
		if !ok {
			return fmt.Errorf("%w: overlay network %s: not in this node's network state", ErrInvalid, att.NetworkID)
		}
		if seen[att.NetworkID] {
			return fmt.Errorf("%w: container %s: overlay network %s attached twice", ErrInvalid, id, n.Name)
		}
		seen[att.NetworkID] = true
		if !att.Addr.Addr().Is4() || !n.Subnet.Contains(att.Addr.Addr()) || att.Addr.Bits() != n.Subnet.Bits() {
			return fmt.Errorf("%w: container %s: address %s is not in overlay network %s's subnet %s", ErrInvalid, id, att.Addr, n.Name, n.Subnet)
		}
		sb, err := o.ensureSandbox(n)
		if err != nil {
			return err
		}
		sb.members[id] = true
		ep.atts = append(ep.atts, att)
		if err := o.plumbOverlay(sb, ch, cns, id, overlayIfName(i), att); err != nil {
			return fmt.Errorf("network: container %s on overlay %s: %w", id, n.Name, err)
		}
	}
	if err := o.programEndpointVIPs(ep); err != nil {
		return err
	}
	o.log.Info("container attached to overlays", "container_id", id, "networks", len(atts))
	return nil
}

// overlayVeth is the network-namespace end of a container's veth on
// network netID.
func overlayVeth(id, netID string) string {
	h := sha256.Sum256([]byte(id + "/" + netID))
	return "ov" + hex.EncodeToString(h[:])[:11]
}

// plumbOverlay makes the veth pair: one end on the network's bridge, the
// other (ifname, with the address's derived MAC) in the container.
func (o *Overlays) plumbOverlay(sb *sandbox, ch *netlink.Handle, cns netns.NsHandle, id, ifname string, att OverlayAttachment) error {
	host := overlayVeth(id, sb.id)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MTU: o.mtu, MasterIndex: sb.bridge.Attrs().Index},
		PeerName: ifname, PeerHardwareAddr: overlayMAC(att.Addr.Addr()), PeerNamespace: netlink.NsFd(int(cns)), PeerMTU: uint32(o.mtu)}
	if err := sb.h.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating veth %s: %w", host, err)
	}
	hl, err := sb.h.LinkByName(host)
	if err != nil {
		return fmt.Errorf("veth %s: %w", host, err)
	}
	if err := sb.h.LinkSetMaster(hl, sb.bridge); err != nil {
		return fmt.Errorf("enslaving %s: %w", host, err)
	}
	if err := sb.h.LinkSetUp(hl); err != nil {
		return fmt.Errorf("bringing up %s: %w", host, err)
	}
	l, err := ch.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s in the container: %w", ifname, err)
	}
	if err := ch.AddrAdd(l, &netlink.Addr{IPNet: ipNet(att.Addr)}); err != nil {
		return fmt.Errorf("adding %s to the container's %s: %w", att.Addr, ifname, err)
	}
	if err := ch.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing up the container's %s: %w", ifname, err)
	}
	return nil
}

// ensureSandbox returns network n's namespace on this node, creating it
// (namespace, bridge with the gateway address, VXLAN device, peers) if it
// is the network's first container here. Called with mu held.
func (o *Overlays) ensureSandbox(n OverlayNetwork) (sb *sandbox, err error) {
	if sb, ok := o.sandboxes[n.ID]; ok {
		if sb.vni != n.VNI {
			return nil, fmt.Errorf("%w: overlay network %s has vni %d on this node, the managers say %d", ErrInvalid, n.Name, sb.vni, n.VNI)
		}
		return sb, nil
	}
	path := o.NetNSPath(n.ID)
	if err := createNetns(path); err != nil {
		return nil, err
	}
	sb = &sandbox{id: n.ID, path: path, vni: n.VNI, members: map[string]bool{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, sb.destroy())
		}
	}()
	if sb.ns, err = netns.GetFromPath(path); err != nil {
		return nil, fmt.Errorf("network: overlay netns %s: %w", path, err)
	}
	if sb.h, err = netlink.NewHandleAt(sb.ns); err != nil {
		return nil, fmt.Errorf("network: netlink in overlay netns %s: %w", path, err)
	}
	if err := o.buildSandbox(sb, n); err != nil {
		return nil, fmt.Errorf("network: overlay network %s (vni %d): %w", n.Name, n.VNI, err)
	}
	if err := sb.programPeers(o.cfg.LocalAddr, n); err != nil {
		return nil, err
	}
	o.sandboxes[n.ID] = sb
	o.log.Info("overlay network created on node", "network_id", n.ID, "network", n.Name, "vni", n.VNI, "subnet", n.Subnet)
	return sb, nil
}

func (o *Overlays) buildSandbox(sb *sandbox, n OverlayNetwork) error {
	h := sb.h
	if lo, err := h.LinkByName("lo"); err == nil {
		_ = h.LinkSetUp(lo)
	}
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: overlayBridge, MTU: o.mtu}}); err != nil {
		return fmt.Errorf("creating bridge: %w", err)
	}
	br, err := h.LinkByName(overlayBridge)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	sb.bridge = br
	if n.Gateway.IsValid() {
		// The gateway only answers inside the network (ping, diagnostics):
		// the namespace has no other link, so nothing is routed.
		if err := h.AddrAdd(br, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(n.Gateway, n.Subnet.Bits()))}); err != nil {
			return fmt.Errorf("adding gateway %s: %w", n.Gateway, err)
		}
	}
	// The VXLAN device is created in the underlay namespace, so that its
	// UDP socket is bound there, then moved into the network's namespace.
	tmp := "vx" + overlayVeth(o.dir, n.ID)[2:]
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: tmp, MTU: o.mtu}, VxlanId: int(n.VNI),
		VtepDevIndex: o.vtepIndex, SrcAddr: net.IP(o.cfg.LocalAddr.AsSlice()), Port: o.cfg.Port,
		Learning: false, Proxy: true}
	if err := o.uh.LinkAdd(vx); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating VXLAN device: vni %d on UDP %d is in use by another device of this node's namespace: %w", n.VNI, o.cfg.Port, err)
		}
		return fmt.Errorf("creating VXLAN device: %w", err)
	}
	l, err := o.uh.LinkByName(tmp)
	if err == nil {
		if err = o.uh.LinkSetNsFd(l, int(sb.ns)); err != nil {
			_ = o.uh.LinkDel(l)
		}
	}
	if err != nil {
		return fmt.Errorf("moving VXLAN device into the network's namespace: %w", err)
	}
	if l, err = h.LinkByName(tmp); err != nil {
		return fmt.Errorf("VXLAN device: %w", err)
	}
	if err := h.LinkSetName(l, overlayVXLAN); err != nil {
		return fmt.Errorf("naming VXLAN device: %w", err)
	}
	if err := h.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("attaching VXLAN device to the bridge: %w", err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing up VXLAN device: %w", err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("bringing up bridge: %w", err)
	}
	if sb.vxlan, err = h.LinkByName(overlayVXLAN); err != nil {
		return fmt.Errorf("VXLAN device: %w", err)
	}
	return nil
}

// openSandbox opens a network namespace an earlier worker process made.
func (o *Overlays) openSandbox(id string) (sb *sandbox, err error) {
	sb = &sandbox{id: id, path: o.NetNSPath(id), members: map[string]bool{}}
	if sb.ns, err = netns.GetFromPath(sb.path); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sb.close()
		}
	}()
	if sb.h, err = netlink.NewHandleAt(sb.ns); err != nil {
		return nil, err
	}
	if sb.bridge, err = sb.h.LinkByName(overlayBridge); err != nil {
		return nil, err
	}
	if sb.vxlan, err = sb.h.LinkByName(overlayVXLAN); err != nil {
		return nil, err
	}
	vx, ok := sb.vxlan.(*netlink.Vxlan)
	if !ok {
		return nil, fmt.Errorf("%s is a %s", overlayVXLAN, sb.vxlan.Type())
	}
	sb.vni = uint32(vx.VxlanId)
	return sb, nil
}

// Detach removes container id's overlay links, and each network's
// namespace, bridge and VXLAN device when the container was its last here.
// An unknown container is no error.
func (o *Overlays) Detach(id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.detachLocked(id)
}

func (o *Overlays) detachLocked(id string) error {
	var errs []error
	ep := o.endpoints[id]
	delete(o.endpoints, id)
	for nid, sb := range o.sandboxes {
		if !sb.members[id] {
			continue
		}
		if l, err := sb.h.LinkByName(overlayVeth(id, nid)); err == nil {
			if err := sb.h.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("network: deleting overlay veth of %s: %w", id, err))
			}
		}
		delete(sb.members, id)
		if len(sb.members) == 0 {
			errs = append(errs, o.removeSandbox(sb))
		}
	}
	if ep != nil && ep.vipsOK && len(ep.vips) > 0 {
		// The table goes with the container's namespace; remove it anyway
		// in case the namespace outlives the attachment.
		if err := programVIPsAt(ep.nsPath, nil); err != nil && !errors.Is(err, os.ErrNotExist) {
			o.log.Debug("removing container VIP table", "container_id", id, "err", err)
		}
	}
	if ep != nil && len(ep.atts) > 0 {
		o.log.Info("container detached from overlays", "container_id", id)
	}
	return errors.Join(errs...)
}

// removeSandbox deletes a network's namespace and links. Called with mu held.
func (o *Overlays) removeSandbox(sb *sandbox) error {
	delete(o.sandboxes, sb.id)
	err := sb.destroy()
	o.log.Info("overlay network removed from node", "network_id", sb.id, "vni", sb.vni)
	return err
}

// destroy deletes every link of the namespace (so that the VXLAN device's
// VNI and socket are free at once, not when the kernel gets round to
// freeing the namespace) and unmounts it.
func (sb *sandbox) destroy() error {
	var errs []error
	if sb.h != nil {
		errs = append(errs, deleteLinks(sb.h))
	}
	sb.close()
	return errors.Join(append(errs, removeNetns(sb.path))...)
}

func (sb *sandbox) close() {
	if sb.h != nil {
		sb.h.Close()
		sb.h = nil
	}
	if sb.ns.IsOpen() {
		sb.ns.Close()
	}
}

// deleteLinks deletes every link but lo: VXLAN first, so that nothing is
// forwarded while the rest goes.
func deleteLinks(h *netlink.Handle) error {
	links, err := retryDump(h.LinkList)
	if err != nil {
		return fmt.Errorf("network: listing overlay links: %w", err)
	}
	slices.SortFunc(links, func(a, b netlink.Link) int {
		rank := func(l netlink.Link) int {
			switch l.Type() {
			case "vxlan":
				return 0
			case "bridge":
				return 2
			}
			return 1
		}
		return rank(a) - rank(b)
	})
	var errs []error
	for _, l := range links {
		if l.Attrs().Name == "lo" {
			continue
		}
		if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("network: deleting overlay link %s: %w", l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// destroySandboxAt removes the overlay namespace mounted at path.
func destroySandboxAt(path string) error {
	sb := &sandbox{path: path}
	if ns, err := netns.GetFromPath(path); err == nil {
		sb.ns = ns
		if sb.h, err = netlink.NewHandleAt(ns); err != nil {
			sb.h = nil
		}
	}
	return sb.destroy()
}

// Adopt takes over the overlay attachments of container id, which an
// earlier worker process made and whose container is still running: it
// checks that each link is still in place and reprograms the container's
// VIP rules. Call it after Sweep kept the container.
func (o *Overlays) Adopt(id, nsPath string, atts []OverlayAttachment) error {
	if len(atts) == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.endpoints[id]; ok {
		return nil
	}
	for _, att := range atts {
		sb, ok := o.sandboxes[att.NetworkID]
		if !ok || !sb.members[id] {
			return fmt.Errorf("network: adopting %s: its link on overlay network %s is gone", id, att.NetworkID)
		}
	}
	ep := &overlayEndpoint{id: id, nsPath: nsPath, atts: slices.Clone(atts)}
	o.endpoints[id] = ep
	if err := o.programEndpointVIPs(ep); err != nil {
		return err
	}
	o.log.Info("container overlay attachments adopted", "container_id", id, "networks", len(atts))
	return nil
}

// Sweep keeps the overlay links of the containers in keep (re-adopted by
// the runtime) and of those attached now, and removes every other link an
// earlier worker process left, and the networks no container is left on.
func (o *Overlays) Sweep(keep map[string]bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for nid, sb := range o.sandboxes {
		want := map[string]string{} // veth name -> container ID
		for id := range keep {
			want[overlayVeth(id, nid)] = id
		}
		for id := range sb.members {
			want[overlayVeth(id, nid)] = id
		}
		links, err := retryDump(sb.h.LinkList)
		if err != nil {
			errs = append(errs, fmt.Errorf("network: sweep: overlay %s: %w", nid, err))
			continue
		}
		for _, l := range links {
			if l.Type() != "veth" {
				continue
			}
			if id, ok := want[l.Attrs().Name]; ok {
				sb.members[id] = true
				continue
			}
			if err := sb.h.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("network: sweep: deleting %s: %w", l.Attrs().Name, err))
			}
		}
		if len(sb.members) == 0 {
			o.log.Info("sweeping leftover overlay network", "network_id", nid)
			errs = append(errs, o.removeSandbox(sb))
		}
	}
	return errors.Join(errs...)
}

// Attached counts the containers with overlay attachments.
func (o *Overlays) Attached() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.endpoints)
}

// Close removes every overlay network of the node and its links, and
// releases the underlay handle. Containers' own namespaces are left to
// their owner.
func (o *Overlays) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for id := range o.endpoints {
		errs = append(errs, o.detachLocked(id))
	}
	for _, sb := range o.sandboxes {
		errs = append(errs, o.removeSandbox(sb))
	}
	errs = append(errs, removeOverlayLeftovers(o.dir))
	o.closeHandles()
	return errors.Join(errs...)
}

// removeOverlayLeftovers destroys every overlay namespace mounted in dir.
func removeOverlayLeftovers(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, destroySandboxAt(filepath.Join(dir, e.Name())))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_ = os.Remove(dir)
	return nil
}
