package allocator

import (
	"errors"
	"strings"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestAllocateNetwork(t *testing.T) {
	networks := []*minkepb.Network{
		{Spec: &minkepb.NetworkSpec{Name: "front"}, Subnet: "10.10.0.0/24", Vni: 4096},
		{Spec: &minkepb.NetworkSpec{Name: "back"}, Subnet: "10.20.0.0/16", Vni: 4098},
	}
	nodes := []*minkepb.Node{{Meta: &minkepb.Meta{Id: "node1"},
		Description: &minkepb.NodeDescription{Hostname: "w1", ContainerSubnet: "10.10.1.0/24"}}}
	for _, tc := range []struct {
		name        string
		spec        *minkepb.NetworkSpec
		wantSubnet  string
		wantGateway string
		wantErr     error
		errHas      string
	}{
		{name: "first free /24 of the pool, past a network and a node", spec: &minkepb.NetworkSpec{},
			wantSubnet: "10.10.2.0/24", wantGateway: "10.10.2.1"},
		{name: "given subnet and gateway", spec: &minkepb.NetworkSpec{Subnet: "192.168.50.0/24", Gateway: "192.168.50.254"},
			wantSubnet: "192.168.50.0/24", wantGateway: "192.168.50.254"},
		{name: "overlaps a network", spec: &minkepb.NetworkSpec{Subnet: "10.20.5.0/24"}, wantErr: ErrSubnetOverlap, errHas: `network "back"`},
		{name: "contains a network", spec: &minkepb.NetworkSpec{Subnet: "10.0.0.0/8"}, wantErr: ErrSubnetOverlap, errHas: `network "front"`},
		{name: "overlaps a node's container subnet", spec: &minkepb.NetworkSpec{Subnet: "10.10.1.0/25"}, wantErr: ErrSubnetOverlap, errHas: "node node1 (w1)"},
		{name: "overlaps the VIP range", spec: &minkepb.NetworkSpec{Subnet: "172.30.4.0/24"}, wantErr: ErrSubnetOverlap, errHas: "VIP range"},
		{name: "not a CIDR", spec: &minkepb.NetworkSpec{Subnet: "10.30.0.0"}, wantErr: ErrInvalidSubnet, errHas: "CIDR"},
		{name: "garbage", spec: &minkepb.NetworkSpec{Subnet: "300.1.1.0/24"}, wantErr: ErrInvalidSubnet},
		{name: "IPv6", spec: &minkepb.NetworkSpec{Subnet: "fd00::/64"}, wantErr: ErrInvalidSubnet, errHas: "IPv4"},
		{name: "host bits", spec: &minkepb.NetworkSpec{Subnet: "10.30.0.5/24"}, wantErr: ErrInvalidSubnet, errHas: "10.30.0.0/24"},
		{name: "too small", spec: &minkepb.NetworkSpec{Subnet: "10.30.0.0/30"}, wantErr: ErrInvalidSubnet, errHas: "/29"},
		{name: "too large", spec: &minkepb.NetworkSpec{Subnet: "10.0.0.0/7"}, wantErr: ErrInvalidSubnet},
		{name: "loopback", spec: &minkepb.NetworkSpec{Subnet: "127.1.0.0/16"}, wantErr: ErrInvalidSubnet, errHas: "reserved"},
		{name: "gateway outside", spec: &minkepb.NetworkSpec{Subnet: "10.30.0.0/24", Gateway: "10.31.0.1"}, wantErr: ErrInvalidGateway, errHas: "inside 10.30.0.0/24"},
		{name: "gateway is the network address", spec: &minkepb.NetworkSpec{Subnet: "10.30.0.0/24", Gateway: "10.30.0.0"}, wantErr: ErrInvalidGateway},
		{name: "gateway is the broadcast address", spec: &minkepb.NetworkSpec{Subnet: "10.30.0.0/24", Gateway: "10.30.0.255"}, wantErr: ErrInvalidGateway},
		{name: "gateway not an address", spec: &minkepb.NetworkSpec{Subnet: "10.30.0.0/24", Gateway: "gw"}, wantErr: ErrInvalidGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := AllocateNetwork(tc.spec, networks, nodes)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err %v, want %v containing %q", err, tc.wantErr, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.GetSubnet() != tc.wantSubnet || n.GetGateway() != tc.wantGateway {
				t.Fatalf("got %s gw %s, want %s gw %s", n.GetSubnet(), n.GetGateway(), tc.wantSubnet, tc.wantGateway)
			}
			if n.GetVni() != 4097 {
				t.Fatalf("vni %d, want the lowest free, 4097", n.GetVni())
			}
		})
	}
}

func TestAllocateNetworkPoolExhausted(t *testing.T) {
	var networks []*minkepb.Network
	for i := 0; i < 256; i++ {
		n, err := AllocateNetwork(&minkepb.NetworkSpec{}, networks, nil)
		if err != nil {
			t.Fatalf("network %d: %v", i, err)
		}
		for _, o := range networks {
			if o.GetSubnet() == n.GetSubnet() || o.GetVni() == n.GetVni() {
				t.Fatalf("network %d got %s vni %d again", i, n.GetSubnet(), n.GetVni())
			}
		}
		networks = append(networks, n)
	}
	if _, err := AllocateNetwork(&minkepb.NetworkSpec{}, networks, nil); !errors.Is(err, ErrNoSubnets) {
		t.Fatalf("257th /24 of a /16: %v, want ErrNoSubnets", err)
	}
}
