package allocator_test

import (
	"context"
	"fmt"
	"math/rand"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/allocator"
	"github.com/minke-io/minke/pkg/raftstore"
)

func newTask(netIDs ...string) *minkepb.Task {
	spec := &minkepb.TaskSpec{}
	for _, id := range netIDs {
		spec.Networks = append(spec.Networks, &minkepb.NetworkAttachmentConfig{Target: id})
	}
	return &minkepb.Task{Meta: &minkepb.Meta{Id: raftstore.NewID()}, Spec: spec,
		Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING}}
}

// TestAttachNetworksProperties drives a real store through random rounds
// of task creation (several tasks per write, as the orchestrator does),
// task failure and deletion, and service VIPs, on a small network and a
// second one, and checks after every round that no address is held twice,
// every address is a usable host address of its network, a task beyond
// the network's capacity is created waiting (NEW) with the reason, and
// freed addresses are handed out again.
func TestAttachNetworksProperties(t *testing.T) {
	n := storetest.New(t)
	ctx := context.Background()
	nets := map[string]*minkepb.Network{}
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		for i, spec := range []*minkepb.NetworkSpec{{Name: "small", Subnet: "10.10.0.0/28"}, {Name: "big"}} {
			nw, err := allocator.AllocateNetwork(spec, tx.Networks(), nil)
			if err != nil {
				return err
			}
			nw.Meta, nw.Spec = &minkepb.Meta{Id: fmt.Sprintf("net%d", i)}, spec
			nets[nw.GetMeta().GetId()] = nw
			if err := tx.Create(nw); err != nil {
				return err
			}
		}
		return nil
	})
	// small: 16 addresses - network, broadcast, gateway = 13 usable.
	const smallCap = 13
	rng := rand.New(rand.NewSource(7))
	var live []string // IDs of tasks not yet failed or deleted
	vipSvcs := 0
	for round := 0; round < 60; round++ {
		err := n.Update(ctx, func(tx *raftstore.WriteTx) error {
			switch op := rng.Intn(4); {
			case op <= 1: // create 1-5 tasks in one write
				for i := 0; i < 1+rng.Intn(5); i++ {
					ids := []string{"net0"}
					if rng.Intn(2) == 0 {
						ids = append(ids, "net1")
					}
					task := newTask(ids...)
					if err := allocator.AttachNetworks(tx, task); err != nil {
						return err
					}
					if err := tx.Create(task); err != nil {
						return err
					}
				}
			case op == 2 && len(live) > 0: // a task fails or is deleted
				i := rng.Intn(len(live))
				task := proto.Clone(tx.Task(live[i])).(*minkepb.Task)
				if rng.Intn(2) == 0 {
					return tx.Delete(task)
				}
				task.Status = &minkepb.TaskStatus{State: minkepb.TaskState_FAILED}
				return tx.Update(task)
			case op == 3 && vipSvcs < 3: // a service takes a VIP on both networks
				vipSvcs++
				svc := &minkepb.Service{Meta: &minkepb.Meta{Id: raftstore.NewID()}, Spec: &minkepb.ServiceSpec{
					Name: fmt.Sprintf("svc%d", vipSvcs), Task: newTask("net0", "net1").GetSpec()}}
				vips, err := allocator.AllocateServiceVIPs(tx, svc, nil)
				if err != nil {
					return err
				}
				svc.Endpoint = &minkepb.Endpoint{VirtualIps: vips}
				return tx.Create(svc)
			}
			return nil
		})
		if err != nil && !strings.Contains(err.Error(), "no free address") {
			t.Fatalf("round %d: %v", round, err)
		}
		live = live[:0]
		_ = n.View(func(tx raftstore.ReadTx) error {
			holders := map[string]string{}
			take := func(netID, addr, who string) {
				p, err := netip.ParsePrefix(addr)
				if err != nil {
					t.Fatalf("round %d: %s holds %q, not CIDR", round, who, addr)
				}
				nw := nets[netID]
				subnet := netip.MustParsePrefix(nw.GetSubnet())
				if p.Bits() != subnet.Bits() || !subnet.Contains(p.Addr()) || p.Addr() == subnet.Addr() ||
					p.Addr().String() == nw.GetGateway() || !subnet.Contains(p.Addr().Next()) {
					t.Fatalf("round %d: %s holds %s, not a usable host address of %s (gateway %s)", round, who, p, subnet, nw.GetGateway())
				}
				k := netID + "/" + p.Addr().String()
				if other, dup := holders[k]; dup {
					t.Fatalf("round %d: %s on %s held by %s and %s", round, p.Addr(), netID, other, who)
				}
				holders[k] = who
			}
			waiting, onSmall := 0, 0
			for _, task := range tx.Tasks() {
				switch task.GetStatus().GetState() {
				case minkepb.TaskState_NEW:
					waiting++
					if len(task.GetNetworks()) != 0 || !strings.Contains(task.GetStatus().GetMessage(), "waiting for a free address: no free address on network \"small\"") {
						t.Fatalf("round %d: waiting task %v", round, task)
					}
					continue
				case minkepb.TaskState_FAILED:
					continue
				}
				live = append(live, task.GetMeta().GetId())
				if len(task.GetNetworks()) != len(task.GetSpec().GetNetworks()) {
					t.Fatalf("round %d: task has %d attachments for %d networks", round, len(task.GetNetworks()), len(task.GetSpec().GetNetworks()))
				}
				for _, att := range task.GetNetworks() {
					if att.GetNetworkId() == "net0" {
						onSmall++
					}
					take(att.GetNetworkId(), att.GetAddresses()[0], "task "+task.GetMeta().GetId())
				}
			}
			for _, svc := range tx.Services() {
				for _, v := range svc.GetEndpoint().GetVirtualIps() {
					if v.GetNetworkId() == "net0" {
						onSmall++
					}
					take(v.GetNetworkId(), v.GetAddr(), "service "+svc.GetSpec().GetName())
				}
			}
			if onSmall > smallCap {
				t.Fatalf("round %d: %d holders on a network of %d addresses", round, onSmall, smallCap)
			}
			if waiting > 0 && round == 59 {
				t.Logf("%d tasks waiting for an address at the end", waiting)
			}
			return nil
		})
	}
	// Fill what is left of the small network: a full network rejects, and
	// failing one task frees exactly one address for the next.
	for i := 0; i < smallCap+1; i++ {
		storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
			task := newTask("net0")
			_ = allocator.AttachNetworks(tx, task)
			return tx.Create(task)
		})
	}
	var victim *minkepb.Task
	_ = n.View(func(tx raftstore.ReadTx) error {
		if got, svcs := len(tx.LiveTasksOnNetwork("net0")), len(tx.Services()); got+svcs != smallCap {
			t.Fatalf("full network: %d live tasks + %d VIPs, want %d", got, svcs, smallCap)
		}
		victim = proto.Clone(tx.LiveTasksOnNetwork("net0")[0]).(*minkepb.Task)
		return nil
	})
	victim.Status.State = minkepb.TaskState_SHUTDOWN
	var next *minkepb.Task
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		if err := tx.Update(victim); err != nil {
			return err
		}
		next = newTask("net0")
		_ = allocator.AttachNetworks(tx, next)
		return tx.Create(next)
	})
	if next.GetStatus().GetState() != minkepb.TaskState_PENDING || len(next.GetNetworks()) != 1 ||
		next.GetNetworks()[0].GetAddresses()[0] != victim.GetNetworks()[0].GetAddresses()[0] {
		t.Fatalf("after freeing %s: next task %v", victim.GetNetworks()[0].GetAddresses()[0], next)
	}
}

func TestAttachNetworksRemovedNetwork(t *testing.T) {
	n := storetest.New(t)
	task := newTask("gone")
	_ = n.View(func(tx raftstore.ReadTx) error { return allocator.AttachNetworks(tx, task) })
	if task.GetStatus().GetState() != minkepb.TaskState_REJECTED || !strings.Contains(task.GetStatus().GetErr(), "gone") {
		t.Fatalf("task on a removed network: %v", task.GetStatus())
	}
}

func TestServiceVIPsKeptAndFreed(t *testing.T) {
	n := storetest.New(t)
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		for i, subnet := range []string{"10.10.0.0/24", "10.10.1.0/24"} {
			if err := tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: fmt.Sprintf("net%d", i)},
				Spec: &minkepb.NetworkSpec{Name: fmt.Sprintf("n%d", i)}, Subnet: subnet, Gateway: strings.TrimSuffix(subnet, "0/24") + "1", Vni: uint32(4096 + i)}); err != nil {
				return err
			}
		}
		return nil
	})
	svc := &minkepb.Service{Meta: &minkepb.Meta{Id: "s1"}, Spec: &minkepb.ServiceSpec{Name: "web", Task: newTask("net0").GetSpec()}}
	var first []*minkepb.EndpointVirtualIP
	_ = n.View(func(tx raftstore.ReadTx) error {
		var err error
		first, err = allocator.AllocateServiceVIPs(tx, svc, nil)
		return err
	})
	if len(first) != 1 || first[0].GetNetworkId() != "net0" || !netip.MustParsePrefix("10.10.0.0/24").Contains(netip.MustParsePrefix(first[0].GetAddr()).Addr()) {
		t.Fatalf("VIPs: %v", first)
	}
	// Adding a network keeps the first VIP; DNSRR has none.
	svc.Spec.Task = newTask("net1", "net0").GetSpec()
	_ = n.View(func(tx raftstore.ReadTx) error {
		vips, err := allocator.AllocateServiceVIPs(tx, svc, &minkepb.Endpoint{VirtualIps: first})
		if err != nil || len(vips) != 2 || vips[1].GetAddr() != first[0].GetAddr() || vips[0].GetNetworkId() != "net1" {
			t.Fatalf("after adding net1: %v, %v", vips, err)
		}
		svc.Spec.Endpoint = &minkepb.EndpointSpec{Mode: minkepb.EndpointSpec_DNSRR}
		if vips, err := allocator.AllocateServiceVIPs(tx, svc, &minkepb.Endpoint{VirtualIps: first}); err != nil || vips != nil {
			t.Fatalf("DNSRR: %v, %v", vips, err)
		}
		return nil
	})
}
