package agent

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/network"
)

func TestOverlayNetworksFromState(t *testing.T) {
	nets, records := overlayNetworks([]*minkepb.OverlayNetwork{{
		Id: "n1", Name: "front", Subnet: "10.10.0.0/24", Gateway: "10.10.0.1", Vni: 4097,
		Peers: []*minkepb.OverlayPeer{
			{TaskId: "t1", Address: "10.10.0.5/24", NodeAddr: "192.168.1.2"},
			{TaskId: "t2", Address: "garbage", NodeAddr: "192.168.1.3"},
		},
		Services: []*minkepb.ServiceRecord{
			{Name: "web", VirtualIp: "10.10.0.2/24", Backends: []string{"10.10.0.5/24", "10.10.0.6"}, Aliases: []string{"www"}},
			{Name: "db", Backends: []string{"10.10.0.7/24"}},
		},
	}})
	if len(nets) != 1 {
		t.Fatalf("networks: %v", nets)
	}
	n := nets[0]
	a := netip.MustParseAddr
	if n.ID != "n1" || n.Subnet != netip.MustParsePrefix("10.10.0.0/24") || n.Gateway != a("10.10.0.1") || n.VNI != 4097 {
		t.Fatalf("network: %+v", n)
	}
	if len(n.Peers) != 1 || n.Peers[0] != (network.OverlayPeer{Addr: a("10.10.0.5"), NodeAddr: a("192.168.1.2")}) {
		t.Fatalf("peers: %v", n.Peers)
	}
	if len(n.VIPs) != 1 || n.VIPs[0].VIP != a("10.10.0.2") || !slices.Equal(n.VIPs[0].Backends, []netip.Addr{a("10.10.0.5"), a("10.10.0.6")}) {
		t.Fatalf("VIPs: %v", n.VIPs)
	}
	rs := records["n1"]
	if len(rs) != 2 || rs[0].VIP != a("10.10.0.2") || !slices.Equal(rs[0].Aliases, []string{"www"}) || rs[1].VIP.IsValid() ||
		!slices.Equal(rs[1].Backends, []netip.Addr{a("10.10.0.7")}) {
		t.Fatalf("records: %+v", rs)
	}
}

func TestOverlayAttachments(t *testing.T) {
	task := func(nas ...*minkepb.NetworkAttachment) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: "t1"}, Networks: nas}
	}
	got, err := overlayAttachments(task(
		&minkepb.NetworkAttachment{NetworkId: "n1", Addresses: []string{"10.10.0.5/24"}},
		&minkepb.NetworkAttachment{NetworkId: "n2", Addresses: []string{"10.20.0.9/24"}}))
	want := []network.OverlayAttachment{{NetworkID: "n1", Addr: netip.MustParsePrefix("10.10.0.5/24")}, {NetworkID: "n2", Addr: netip.MustParsePrefix("10.20.0.9/24")}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("%v, %v; want %v", got, err, want)
	}
	for name, na := range map[string]*minkepb.NetworkAttachment{
		"no address":     {NetworkId: "n1"},
		"not CIDR":       {NetworkId: "n1", Addresses: []string{"10.10.0.5"}},
		"not an address": {NetworkId: "n1", Addresses: []string{"x"}},
	} {
		if _, err := overlayAttachments(task(na)); !errors.Is(err, network.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if got, err := overlayAttachments(task()); err != nil || got != nil {
		t.Errorf("no networks: %v, %v", got, err)
	}
}
