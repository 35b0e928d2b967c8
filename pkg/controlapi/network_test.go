package controlapi

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

func createNetwork(t *testing.T, s *Server, spec *minkepb.NetworkSpec) *minkepb.Network {
	t.Helper()
	resp, err := s.CreateNetwork(context.Background(), &minkepb.CreateNetworkRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetNetwork()
}

func wantStatus(t *testing.T, err error, code codes.Code, want ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != code {
		t.Fatalf("err %v, want code %v", err, code)
	}
	for _, w := range want {
		if !strings.Contains(st.Message(), w) {
			t.Fatalf("message %q does not name %q", st.Message(), w)
		}
	}
}

func storeState(t *testing.T, n *raftstore.Node) *minkepb.Snapshot {
	snap := &minkepb.Snapshot{}
	_ = n.View(func(tx raftstore.ReadTx) error {
		snap.Networks, snap.Services, snap.Tasks = tx.Networks(), tx.Services(), tx.Tasks()
		return nil
	})
	return snap
}

func TestCreateNetwork(t *testing.T) {
	s, n := newServer(t)
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Node{Meta: &minkepb.Meta{Id: "node1"},
			Description: &minkepb.NodeDescription{Hostname: "w1", ContainerSubnet: "10.10.1.0/24"}})
	})
	front := createNetwork(t, s, &minkepb.NetworkSpec{Name: "front", Labels: map[string]string{"tier": "web"}})
	if front.GetSubnet() != "10.10.0.0/24" || front.GetGateway() != "10.10.0.1" || front.GetVni() != 4096 ||
		front.GetSpec().GetDriver() != "overlay" || front.GetMeta().GetVersion() == 0 {
		t.Fatalf("front: %v", front)
	}
	back := createNetwork(t, s, &minkepb.NetworkSpec{Name: "back"})
	if back.GetSubnet() != "10.10.2.0/24" || back.GetVni() != 4097 {
		t.Fatalf("back skips node1's container subnet and front's VNI: %v", back)
	}
	createNetwork(t, s, &minkepb.NetworkSpec{Name: "db", Subnet: "192.168.7.0/24", Gateway: "192.168.7.254"})
	before := storeState(t, n)

	for _, tc := range []struct {
		name string
		spec *minkepb.NetworkSpec
		code codes.Code
		want []string
	}{
		{"no spec", nil, codes.InvalidArgument, []string{"spec is required"}},
		{"no name", &minkepb.NetworkSpec{}, codes.InvalidArgument, []string{"name is required"}},
		{"invalid name", &minkepb.NetworkSpec{Name: "-front"}, codes.InvalidArgument, []string{`invalid name "-front"`, "letters"}},
		{"reserved name", &minkepb.NetworkSpec{Name: "Ingress"}, codes.InvalidArgument, []string{"Ingress", "reserved"}},
		{"name in use", &minkepb.NetworkSpec{Name: "FRONT"}, codes.AlreadyExists, []string{`"FRONT"`, "already exists", front.GetMeta().GetId()}},
		{"invalid CIDR", &minkepb.NetworkSpec{Name: "x", Subnet: "10.1.2.300/24"}, codes.InvalidArgument, []string{`subnet "10.1.2.300/24"`, "CIDR"}},
		{"host bits", &minkepb.NetworkSpec{Name: "x", Subnet: "10.30.0.1/24"}, codes.InvalidArgument, []string{"host bits", "10.30.0.0/24"}},
		{"overlaps a network", &minkepb.NetworkSpec{Name: "x", Subnet: "10.10.0.0/25"}, codes.AlreadyExists, []string{"overlaps", `network "front"`}},
		{"overlaps a node", &minkepb.NetworkSpec{Name: "x", Subnet: "10.10.1.128/25"}, codes.AlreadyExists, []string{"overlaps", "node node1 (w1)"}},
		{"overlaps the VIPs", &minkepb.NetworkSpec{Name: "x", Subnet: "172.30.0.0/24"}, codes.AlreadyExists, []string{"VIP range"}},
		{"gateway outside", &minkepb.NetworkSpec{Name: "x", Subnet: "10.40.0.0/24", Gateway: "10.41.0.1"}, codes.InvalidArgument, []string{"gateway 10.41.0.1", "inside 10.40.0.0/24"}},
		{"gateway without subnet", &minkepb.NetworkSpec{Name: "x", Gateway: "10.41.0.1"}, codes.InvalidArgument, []string{"needs --subnet"}},
		{"other driver", &minkepb.NetworkSpec{Name: "x", Driver: "macvlan"}, codes.InvalidArgument, []string{`"macvlan"`, "overlay"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateNetwork(context.Background(), &minkepb.CreateNetworkRequest{Spec: tc.spec})
			wantStatus(t, err, tc.code, tc.want...)
			if after := storeState(t, n); !proto.Equal(before, after) {
				t.Fatal("a refused create changed the store")
			}
		})
	}

	ls, _ := s.ListNetworks(context.Background(), &minkepb.ListNetworksRequest{})
	var names []string
	for _, nw := range ls.GetNetworks() {
		names = append(names, nw.GetSpec().GetName())
	}
	if strings.Join(names, ",") != "back,db,front" {
		t.Fatalf("ls: %v", names)
	}
	for _, ref := range []string{"front", front.GetMeta().GetId(), front.GetMeta().GetId()[:12]} {
		if got, err := s.GetNetwork(context.Background(), &minkepb.GetNetworkRequest{Network: ref}); err != nil || got.GetNetwork().GetMeta().GetId() != front.GetMeta().GetId() {
			t.Fatalf("get %q: %v %v", ref, got, err)
		}
	}
	_, err := s.GetNetwork(context.Background(), &minkepb.GetNetworkRequest{Network: "nope"})
	wantStatus(t, err, codes.NotFound, `"nope"`)
}

func TestServiceNetworks(t *testing.T) {
	s, n := newServer(t)
	ctx := context.Background()
	front := createNetwork(t, s, &minkepb.NetworkSpec{Name: "front"})
	back := createNetwork(t, s, &minkepb.NetworkSpec{Name: "back"})
	withNets := func(name string, nets ...string) *minkepb.ServiceSpec {
		sp := spec(name, "hello:latest", 2)
		for _, nw := range nets {
			sp.Task.Networks = append(sp.Task.Networks, &minkepb.NetworkAttachmentConfig{Target: nw})
		}
		return sp
	}
	resp, err := s.CreateService(ctx, &minkepb.CreateServiceRequest{Spec: withNets("web", "front", back.GetMeta().GetId()[:10])})
	if err != nil {
		t.Fatal(err)
	}
	web := resp.GetService()
	if got := web.GetSpec().GetTask().GetNetworks(); len(got) != 2 || got[0].GetTarget() != front.GetMeta().GetId() || got[1].GetTarget() != back.GetMeta().GetId() {
		t.Fatalf("stored networks are not IDs: %v", got)
	}
	vips := web.GetEndpoint().GetVirtualIps()
	if len(vips) != 2 || !netip.MustParsePrefix(front.GetSubnet()).Contains(netip.MustParsePrefix(vips[0].GetAddr()).Addr()) {
		t.Fatalf("VIPs: %v", vips)
	}

	before := storeState(t, n)
	for _, tc := range []struct {
		name string
		spec *minkepb.ServiceSpec
		code codes.Code
		want []string
	}{
		{"unknown network", withNets("api", "front", "nope"), codes.InvalidArgument, []string{"task.networks[1]", `"nope" not found`, "back, front"}},
		{"duplicate network", withNets("api", "front", front.GetMeta().GetId()), codes.InvalidArgument, []string{"task.networks[1]", "already attached", "task.networks[0]"}},
		{"empty target", withNets("api", ""), codes.InvalidArgument, []string{"task.networks[0]", "required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateService(ctx, &minkepb.CreateServiceRequest{Spec: tc.spec})
			wantStatus(t, err, tc.code, tc.want...)
			if after := storeState(t, n); !proto.Equal(before, after) {
				t.Fatal("a refused create changed the store")
			}
		})
	}

	// In use: refused, naming the service.
	_, err = s.RemoveNetwork(ctx, &minkepb.RemoveNetworkRequest{Network: "front"})
	wantStatus(t, err, codes.FailedPrecondition, "front", "in use", "web")
	got, _ := s.GetNetwork(ctx, &minkepb.GetNetworkRequest{Network: "front"})
	if strings.Join(got.GetServices(), ",") != "web" {
		t.Fatalf("inspect services: %v", got.GetServices())
	}

	// Updating with the same networks by name is no change; dropping one
	// drops its VIP and frees the network.
	same := withNets("web", "front", "back")
	up, err := s.UpdateService(ctx, &minkepb.UpdateServiceRequest{ServiceId: "web", ServiceVersion: web.GetMeta().GetVersion(), Spec: same})
	if err != nil {
		t.Fatal(err)
	}
	if up.GetService().GetUpdateStatus() != nil {
		t.Fatalf("naming the same networks started an update: %v", up.GetService().GetUpdateStatus())
	}
	up, err = s.UpdateService(ctx, &minkepb.UpdateServiceRequest{ServiceId: "web", ServiceVersion: up.GetService().GetMeta().GetVersion(), Spec: withNets("web", "back")})
	if err != nil {
		t.Fatal(err)
	}
	if v := up.GetService().GetEndpoint().GetVirtualIps(); len(v) != 1 || v[0].GetNetworkId() != back.GetMeta().GetId() || v[0].GetAddr() != vips[1].GetAddr() {
		t.Fatalf("VIPs after network-rm front: %v (had %v)", v, vips)
	}
	_, err = s.UpdateService(ctx, &minkepb.UpdateServiceRequest{ServiceId: "web", ServiceVersion: up.GetService().GetMeta().GetVersion(), Spec: withNets("web", "back", "nope")})
	wantStatus(t, err, codes.InvalidArgument, `"nope" not found`)

	// A task still holding an address keeps the network in use after its
	// service is gone.
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Task{Meta: &minkepb.Meta{Id: "t1"}, ServiceName: "old", Status: &minkepb.TaskStatus{State: minkepb.TaskState_RUNNING},
			Networks: []*minkepb.NetworkAttachment{{NetworkId: front.GetMeta().GetId(), Addresses: []string{"10.10.0.77/24"}}}})
	})
	_, err = s.RemoveNetwork(ctx, &minkepb.RemoveNetworkRequest{Network: "front"})
	wantStatus(t, err, codes.FailedPrecondition, "1 task(s)", "t1", "old")
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error { return tx.Delete(tx.Task("t1")) })
	if _, err := s.RemoveNetwork(ctx, &minkepb.RemoveNetworkRequest{Network: "front"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.RemoveNetwork(ctx, &minkepb.RemoveNetworkRequest{Network: "front"})
	wantStatus(t, err, codes.NotFound, "front")
}
