package raftstore

import (
	"errors"
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func network(id, name, subnet string, vni uint32) *minkepb.Network {
	return &minkepb.Network{Meta: &minkepb.Meta{Id: id}, Spec: &minkepb.NetworkSpec{Name: name},
		Subnet: subnet, Gateway: netip.MustParsePrefix(subnet).Addr().Next().String(), Vni: vni}
}

func netTask(id, netID, addr string, state minkepb.TaskState) *minkepb.Task {
	return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, Status: &minkepb.TaskStatus{State: state},
		Networks: []*minkepb.NetworkAttachment{{NetworkId: netID, Addresses: []string{addr}}}}
}

// applyOne commits one action straight to the FSM, as a command proposed
// from a state that did not yet hold the objects before it would be.
func applyOne(t *testing.T, s *MemoryStore, index uint64, kind minkepb.StoreAction_Kind, obj proto.Message) error {
	t.Helper()
	a, err := newAction(kind, proto.Clone(obj))
	if err != nil {
		t.Fatal(err)
	}
	return s.apply(index, &minkepb.StoreActions{Actions: []*minkepb.StoreAction{a}})
}

func TestNetworkInvariantsAtApply(t *testing.T) {
	s := NewMemoryStore()
	idx := uint64(0)
	must := func(kind minkepb.StoreAction_Kind, obj proto.Message) {
		t.Helper()
		idx++
		if err := applyOne(t, s, idx, kind, obj); err != nil {
			t.Fatal(err)
		}
	}
	must(minkepb.StoreAction_CREATE, network("n1", "front", "10.10.0.0/24", 4096))
	must(minkepb.StoreAction_CREATE, netTask("t1", "n1", "10.10.0.2/24", minkepb.TaskState_RUNNING))
	must(minkepb.StoreAction_CREATE, &minkepb.Service{Meta: &minkepb.Meta{Id: "s1"}, Spec: &minkepb.ServiceSpec{Name: "web",
		Task: &minkepb.TaskSpec{Networks: []*minkepb.NetworkAttachmentConfig{{Target: "n1"}}}},
		Endpoint: &minkepb.Endpoint{VirtualIp: "172.30.0.7", VirtualIps: []*minkepb.EndpointVirtualIP{{NetworkId: "n1", Addr: "10.10.0.3/24"}}}})

	for _, tc := range []struct {
		name string
		obj  proto.Message
		want error
	}{
		{"network name in use, other case", network("n2", "FRONT", "10.10.1.0/24", 4097), ErrNameConflict},
		{"overlapping subnet", network("n2", "back", "10.10.0.128/25", 4097), ErrConflict},
		{"containing subnet", network("n2", "back", "10.0.0.0/8", 4097), ErrConflict},
		{"VNI in use", network("n2", "back", "10.10.1.0/24", 4096), ErrConflict},
		{"task address held by a task", netTask("t2", "n1", "10.10.0.2/24", minkepb.TaskState_PENDING), ErrAddressInUse},
		{"task address held by a VIP", netTask("t2", "n1", "10.10.0.3/24", minkepb.TaskState_PENDING), ErrAddressInUse},
		{"VIP held by a task", &minkepb.Service{Meta: &minkepb.Meta{Id: "s2"}, Spec: &minkepb.ServiceSpec{Name: "api"},
			Endpoint: &minkepb.Endpoint{VirtualIps: []*minkepb.EndpointVirtualIP{{NetworkId: "n1", Addr: "10.10.0.2/24"}}}}, ErrAddressInUse},
		{"cluster VIP held by a service", &minkepb.Service{Meta: &minkepb.Meta{Id: "s2"}, Spec: &minkepb.ServiceSpec{Name: "api"},
			Endpoint: &minkepb.Endpoint{VirtualIp: "172.30.0.7"}}, ErrAddressInUse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := applyOne(t, s, idx+1, minkepb.StoreAction_CREATE, tc.obj); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	// A service keeps its own cluster VIP through an update; another
	// address is free to another service.
	var s1 *minkepb.Service
	_ = s.View(func(tx ReadTx) error { s1 = proto.Clone(tx.Service("s1")).(*minkepb.Service); return nil })
	s1.Spec.Labels = map[string]string{"v": "2"}
	must(minkepb.StoreAction_UPDATE, s1)
	must(minkepb.StoreAction_CREATE, &minkepb.Service{Meta: &minkepb.Meta{Id: "s3"}, Spec: &minkepb.ServiceSpec{Name: "db"},
		Endpoint: &minkepb.Endpoint{VirtualIp: "172.30.0.8"}})

	// A pair sharing a cluster VIP from before Apply checked them (here
	// inserted behind Apply's back) can still be updated.
	txn := s.db.Load().Txn(true)
	if err := txn.Insert(tableServices, &minkepb.Service{Meta: &minkepb.Meta{Id: "s4", Version: idx}, Spec: &minkepb.ServiceSpec{Name: "old"},
		Endpoint: &minkepb.Endpoint{VirtualIp: "172.30.0.8"}}); err != nil {
		t.Fatal(err)
	}
	txn.Commit()
	var s4 *minkepb.Service
	_ = s.View(func(tx ReadTx) error { s4 = proto.Clone(tx.Service("s4")).(*minkepb.Service); return nil })
	s4.Spec.Labels = map[string]string{"v": "2"}
	must(minkepb.StoreAction_UPDATE, s4)

	// The same address on another network is another address.
	must(minkepb.StoreAction_CREATE, network("n2", "back", "10.10.1.0/24", 4097))
	must(minkepb.StoreAction_CREATE, netTask("t3", "n2", "10.10.0.2/24", minkepb.TaskState_PENDING))

	// A terminal task frees its address; its record keeps it for history.
	var t1 *minkepb.Task
	_ = s.View(func(tx ReadTx) error { t1 = proto.Clone(tx.Task("t1")).(*minkepb.Task); return nil })
	t1.Status.State = minkepb.TaskState_FAILED
	must(minkepb.StoreAction_UPDATE, t1)
	must(minkepb.StoreAction_CREATE, netTask("t4", "n1", "10.10.0.2/24", minkepb.TaskState_PENDING))

	_ = s.View(func(tx ReadTx) error {
		if h := tx.AddressHolder("n1", netip.MustParseAddr("10.10.0.2")); h != "task t4" {
			t.Errorf("holder of 10.10.0.2 on n1: %q, want task t4", h)
		}
		if h := tx.AddressHolder("n1", netip.MustParseAddr("10.10.0.3")); h != "service web" {
			t.Errorf("holder of 10.10.0.3 on n1: %q, want service web", h)
		}
		if h := tx.AddressHolder("n1", netip.MustParseAddr("10.10.0.4")); h != "" {
			t.Errorf("holder of a free address: %q", h)
		}
		if live := tx.LiveTasksOnNetwork("n1"); len(live) != 1 || live[0].GetMeta().GetId() != "t4" {
			t.Errorf("live tasks on n1: %v, want t4 only", live)
		}
		if svcs := tx.ServicesOnNetwork("n1"); len(svcs) != 1 || svcs[0].GetMeta().GetId() != "s1" {
			t.Errorf("services on n1: %v", svcs)
		}
		for ref, want := range map[string]string{"n2": "n2", "BACK": "n2", "front": "n1"} {
			if n, err := tx.FindNetwork(ref); err != nil || n.GetMeta().GetId() != want {
				t.Errorf("FindNetwork(%q) = %v, %v; want %s", ref, n.GetMeta().GetId(), err, want)
			}
		}
		if _, err := tx.FindNetwork("n"); !errors.Is(err, ErrAmbiguous) {
			t.Errorf("FindNetwork(prefix of two): %v, want ErrAmbiguous", err)
		}
		return nil
	})

	// Deleting a task frees its address too.
	var t4 *minkepb.Task
	_ = s.View(func(tx ReadTx) error { t4 = tx.Task("t4"); return nil })
	must(minkepb.StoreAction_REMOVE, t4)
	_ = s.View(func(tx ReadTx) error {
		if h := tx.AddressHolder("n1", netip.MustParseAddr("10.10.0.2")); h != "" {
			t.Errorf("address of a deleted task still held by %q", h)
		}
		return nil
	})

	// Networks survive a snapshot and restore, indexes included.
	snap := s.snapshot()
	r := NewMemoryStore()
	if err := r.restore(snap, idx); err != nil {
		t.Fatal(err)
	}
	_ = r.View(func(tx ReadTx) error {
		if len(tx.Networks()) != 2 || tx.NetworkByName("front") == nil {
			t.Errorf("restored networks: %v", tx.Networks())
		}
		if h := tx.AddressHolder("n2", netip.MustParseAddr("10.10.0.2")); h != "task t3" {
			t.Errorf("restored holder: %q", h)
		}
		return nil
	})
}
