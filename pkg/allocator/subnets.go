package allocator

import (
	"errors"
	"fmt"
	"net/netip"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Overlay network defaults. A network created without --subnet gets the
// first /24 of OverlayPool that overlaps nothing else; VNIs start above
// the 12-bit VLAN range, as swarm's do.
var (
	OverlayPool          = netip.MustParsePrefix("10.10.0.0/16")
	OverlaySubnetBits    = 24
	MinVNI               = uint32(4096)
	MaxVNI               = uint32(1<<24 - 1)
	minPrefix, maxPrefix = 8, 29 // a /29 leaves gateway, a VIP and 4 tasks
)

// Errors of network allocation.
var (
	// ErrInvalidSubnet: a subnet or gateway cannot be used as given.
	ErrInvalidSubnet = errors.New("allocator: invalid subnet")
	// ErrInvalidGateway: a gateway is not a usable address of its subnet.
	ErrInvalidGateway = errors.New("allocator: invalid gateway")
	// ErrSubnetOverlap: the subnet overlaps another network, a node's
	// container subnet or the VIP range.
	ErrSubnetOverlap = errors.New("allocator: subnet in use")
	// ErrNoSubnets: the overlay pool has no free subnet left.
	ErrNoSubnets = errors.New("allocator: no free subnet in the overlay pool")
	// ErrNoVNIs: every VNI is taken.
	ErrNoVNIs = errors.New("allocator: no free VNI")
	// ErrNoAddresses: a network's subnet is full.
	ErrNoAddresses = errors.New("allocator: no free address")
)

// reserved are ranges no overlay may use: they would shadow the host's
// own loopback, link-local and multicast traffic.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

// AllocateNetwork completes a new network from its spec: the subnet as
// given (it must be an IPv4 network address, /8 to /29) or the first free
// /24 of OverlayPool; the gateway as given (inside the subnet, not its
// network or broadcast address) or the subnet's first address; and the
// lowest free VNI. The subnet must overlap no other network, no node's
// container subnet and not VIPPool; the error names what it overlaps.
// Callers commit the result in the write that reads networks and nodes,
// and the store refuses an overlap or a VNI committed meanwhile.
func AllocateNetwork(spec *minkepb.NetworkSpec, networks []*minkepb.Network, nodes []*minkepb.Node) (*minkepb.Network, error) {
	n := &minkepb.Network{}
	var subnet netip.Prefix
	if s := spec.GetSubnet(); s != "" {
		p, err := ParseSubnet(s)
		if err != nil {
			return nil, err
		}
		if err := checkOverlap(p, networks, nodes); err != nil {
			return nil, err
		}
		subnet = p
	} else {
		found := false
		for p := netip.PrefixFrom(OverlayPool.Addr(), OverlaySubnetBits); OverlayPool.Contains(p.Addr()); p = nextPrefix(p) {
			if checkOverlap(p, networks, nodes) == nil {
				subnet, found = p, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w %s: give one with --subnet", ErrNoSubnets, OverlayPool)
		}
	}
	n.Subnet = subnet.String()
	gw := subnet.Addr().Next()
	if g := spec.GetGateway(); g != "" {
		a, err := netip.ParseAddr(g)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("%w %q: want an IPv4 address inside %s", ErrInvalidGateway, g, subnet)
		}
		if !subnet.Contains(a) || a == subnet.Addr() || a == lastAddr(subnet) {
			return nil, fmt.Errorf("%w %s: want an address inside %s other than its network (%s) and broadcast (%s) addresses",
				ErrInvalidGateway, a, subnet, subnet.Addr(), lastAddr(subnet))
		}
		gw = a
	}
	n.Gateway = gw.String()
	used := map[uint32]bool{}
	for _, o := range networks {
		used[o.GetVni()] = true
	}
	for v := MinVNI; v <= MaxVNI; v++ {
		if !used[v] {
			n.Vni = v
			return n, nil
		}
	}
	return nil, ErrNoVNIs
}

// ParseSubnet parses a user's overlay subnet: an IPv4 network address in
// CIDR form, /8 to /29, outside the reserved ranges.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%w %q: want an IPv4 network in CIDR form, such as 10.20.0.0/24", ErrInvalidSubnet, s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%w %q: it has host bits set; want its network address, %s", ErrInvalidSubnet, s, p.Masked())
	}
	if p.Bits() < minPrefix || p.Bits() > maxPrefix {
		return netip.Prefix{}, fmt.Errorf("%w %q: want a prefix length from /%d to /%d", ErrInvalidSubnet, s, minPrefix, maxPrefix)
	}
	for _, r := range reserved {
		if r.Overlaps(p) {
			return netip.Prefix{}, fmt.Errorf("%w %s: it overlaps the reserved range %s", ErrInvalidSubnet, p, r)
		}
	}
	return p, nil
}

// checkOverlap names the first network, node container subnet or VIP
// range that p overlaps.
func checkOverlap(p netip.Prefix, networks []*minkepb.Network, nodes []*minkepb.Node) error {
	for _, o := range networks {
		if q, err := netip.ParsePrefix(o.GetSubnet()); err == nil && q.Overlaps(p) {
			return fmt.Errorf("%w: subnet %s overlaps %s of network %q", ErrSubnetOverlap, p, q, o.GetSpec().GetName())
		}
	}
	for _, n := range nodes {
		if q, err := netip.ParsePrefix(n.GetDescription().GetContainerSubnet()); err == nil && q.Overlaps(p) {
			return fmt.Errorf("%w: subnet %s overlaps container subnet %s of node %s (%s)", ErrSubnetOverlap, p, q,
				n.GetMeta().GetId(), n.GetDescription().GetHostname())
		}
	}
	if VIPPool.Overlaps(p) {
		return fmt.Errorf("%w: subnet %s overlaps the service VIP range %s", ErrSubnetOverlap, p, VIPPool)
	}
	return nil
}

// nextPrefix is the prefix of p's length right after p.
func nextPrefix(p netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(lastAddr(p).Next(), p.Bits())
}

// lastAddr is p's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	return addr4(u32(p.Masked().Addr()) | (1<<(32-p.Bits()) - 1))
}
