package network

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// VXLANPort is the IANA VXLAN port, the overlays' default UDP port.
const VXLANPort = 4789

// vxlanOverhead is what VXLAN encapsulation adds to a frame (outer IPv4,
// UDP, VXLAN and inner Ethernet headers): an overlay link's MTU is the
// underlay link's minus this.
const vxlanOverhead = 50

// OverlayNetwork is one overlay network as a node programs it.
type OverlayNetwork struct {
	ID      string
	Name    string
	Subnet  netip.Prefix
	Gateway netip.Addr
	// VNI is the VXLAN network identifier (1..16777215), unique per network.
	VNI uint32
	// Peers are the network's live endpoints on every node (this node's own
	// included; they are skipped, the bridge knows them).
	Peers []OverlayPeer
	// VIPs are the network's service VIPs with their backends' overlay
	// addresses; containers attached to the network balance them in their
	// own namespace.
	VIPs []VIPRule
}

// OverlayPeer is one endpoint of an overlay network: a task's overlay
// address and the underlay address of the node (VTEP) that runs it.
type OverlayPeer struct {
	Addr     netip.Addr
	NodeAddr netip.Addr
}

// OverlayAttachment is a container's place on an overlay network.
type OverlayAttachment struct {
	NetworkID string
	// Addr is the container's overlay address with the subnet's length.
	Addr netip.Prefix
}

// Validate checks what the kernel objects are made from.
func (n OverlayNetwork) Validate() error {
	if n.ID == "" {
		return fmt.Errorf("%w: overlay network without an ID", ErrInvalid)
	}
	if err := ValidateSubnet(n.Subnet); err != nil {
		return fmt.Errorf("overlay network %s: %w", n.ID, err)
	}
	if n.VNI == 0 || n.VNI > 1<<24-1 {
		return fmt.Errorf("%w: overlay network %s: vni %d: must be 1 to 16777215", ErrInvalid, n.ID, n.VNI)
	}
	if n.Gateway.IsValid() && !n.Subnet.Contains(n.Gateway) {
		return fmt.Errorf("%w: overlay network %s: gateway %s is outside subnet %s", ErrInvalid, n.ID, n.Gateway, n.Subnet)
	}
	return nil
}

func (n OverlayNetwork) equal(o OverlayNetwork) bool {
	return n.ID == o.ID && n.Name == o.Name && n.Subnet == o.Subnet && n.Gateway == o.Gateway && n.VNI == o.VNI &&
		slices.Equal(n.Peers, o.Peers) &&
		slices.EqualFunc(n.VIPs, o.VIPs, func(a, b VIPRule) bool { return a.VIP == b.VIP && slices.Equal(a.Backends, b.Backends) })
}

// overlayMAC is the MAC of overlay address a: 02:42 and the address's four
// bytes (locally administered, unicast), as docker does. Deriving it lets
// every node program a peer's neighbour and forwarding entries from its
// address alone; addresses are unique in a network, so MACs are too.
func overlayMAC(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// overlayIfName is the name of a container's link on its i-th overlay
// network: eth1, eth2, … (eth0 is the node's bridge network).
func overlayIfName(i int) string { return fmt.Sprintf("eth%d", i+1) }

// ParseAddrOrPrefix reads "10.0.0.5" or "10.0.0.5/24" (the managers send
// overlay addresses in CIDR form) as an address.
func ParseAddrOrPrefix(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, err
		}
		return p.Addr(), nil
	}
	return netip.ParseAddr(s)
}
