package allocator

import (
	"errors"
	"net/netip"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// FuzzAllocateNetwork: whatever subnet and gateway a user types, the
// allocator either refuses with one of its errors or returns a network
// that overlaps nothing it must not, with a usable gateway and a free VNI.
// Without -fuzz it runs over its seeds; run it longer with
//
//	go test -run '^$' -fuzz '^FuzzAllocateNetwork$' -fuzztime 1m ./pkg/allocator
func FuzzAllocateNetwork(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {"10.20.0.0/24", ""}, {"10.20.0.0/24", "10.20.0.254"}, {"10.20.0.7/24", ""},
		{"10.10.0.0/16", ""}, {"172.30.1.0/24", ""}, {"127.0.0.0/8", ""}, {"0.0.0.0/0", ""},
		{"192.168.0.0/29", "192.168.0.7"}, {"fd00::/64", ""}, {"10.0.0.0/7", ""}, {"1.2.3.4", "x"},
		{"10.20.0.0/24", "10.20.1.1"}, {"", "10.10.0.1"}, {"010.20.0.0/24", ""}, {"10.20.0.0/024", ""},
	} {
		f.Add(s[0], s[1])
	}
	networks := []*minkepb.Network{
		{Spec: &minkepb.NetworkSpec{Name: "front"}, Subnet: "10.10.0.0/24", Vni: 4096},
		{Spec: &minkepb.NetworkSpec{Name: "back"}, Subnet: "10.99.0.0/16", Vni: 4097},
	}
	nodes := []*minkepb.Node{{Meta: &minkepb.Meta{Id: "n1"}, Description: &minkepb.NodeDescription{ContainerSubnet: "172.29.1.0/24"}}}
	taken := []netip.Prefix{VIPPool, netip.MustParsePrefix("10.10.0.0/24"), netip.MustParsePrefix("10.99.0.0/16"),
		netip.MustParsePrefix("172.29.1.0/24")}
	taken = append(taken, reserved...)
	f.Fuzz(func(t *testing.T, subnet, gateway string) {
		n, err := AllocateNetwork(&minkepb.NetworkSpec{Subnet: subnet, Gateway: gateway}, networks, nodes)
		if err != nil {
			for _, known := range []error{ErrInvalidSubnet, ErrInvalidGateway, ErrSubnetOverlap, ErrNoSubnets, ErrNoVNIs} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("subnet %q gateway %q: unexpected error %v", subnet, gateway, err)
		}
		p, err := netip.ParsePrefix(n.GetSubnet())
		if err != nil || !p.Addr().Is4() || p.Masked() != p || p.Bits() < minPrefix || p.Bits() > maxPrefix {
			t.Fatalf("subnet %q gateway %q: allocated subnet %q", subnet, gateway, n.GetSubnet())
		}
		if subnet != "" && p.String() != subnet {
			t.Fatalf("subnet %q allocated as %s", subnet, p)
		}
		for _, q := range taken {
			if q.Overlaps(p) {
				t.Fatalf("subnet %q: allocated %s overlaps %s", subnet, p, q)
			}
		}
		gw, err := netip.ParseAddr(n.GetGateway())
		if err != nil || !p.Contains(gw) || gw == p.Addr() || gw == lastAddr(p) {
			t.Fatalf("subnet %q gateway %q: allocated gateway %q in %s", subnet, gateway, n.GetGateway(), p)
		}
		if n.GetVni() < MinVNI || n.GetVni() == 4096 || n.GetVni() == 4097 {
			t.Fatalf("VNI %d", n.GetVni())
		}
	})
}
