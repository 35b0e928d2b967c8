package orchestrator

import (
	"fmt"
	"net/netip"
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// TestTasksGetNetworkAddresses: the tasks the orchestrator creates hold an
// address on each network of their service from their first commit; a
// task that finds its network full waits unscheduled (NEW) instead of
// being placed without it, and the orchestrator does not replace it.
func TestTasksGetNetworkAddresses(t *testing.T) {
	h := newHarness(t, 3)
	h.update(func(tx *raftstore.WriteTx) error {
		if err := tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: "net"}, Spec: &minkepb.NetworkSpec{Name: "front"},
			Subnet: "10.10.0.0/29", Gateway: "10.10.0.1", Vni: 4096}); err != nil {
			return err
		}
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "svc"}, Spec: &minkepb.ServiceSpec{
			Name: "web",
			Task: &minkepb.TaskSpec{
				Container: &minkepb.ContainerSpec{Image: "hello:latest"},
				Restart:   &minkepb.RestartPolicy{Delay: durationpb.New(0)},
				Networks:  []*minkepb.NetworkAttachmentConfig{{Target: "net"}},
			},
			Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 6}},
		}})
	})
	subnet := netip.MustParsePrefix("10.10.0.0/29")
	h.waitFor("5 tasks assigned with addresses and 1 waiting", func(tx raftstore.ReadTx) bool {
		assigned, waiting := 0, 0
		seen := map[string]bool{}
		for _, task := range liveTasks(tx, "svc") {
			switch task.GetStatus().GetState() {
			case minkepb.TaskState_ASSIGNED:
				a := netip.MustParsePrefix(task.GetNetworks()[0].GetAddresses()[0])
				if !subnet.Contains(a.Addr()) || seen[a.String()] {
					t.Fatalf("task %s has %s", task.GetMeta().GetId(), a)
				}
				seen[a.String()] = true
				assigned++
			case minkepb.TaskState_NEW:
				if task.GetNodeId() != "" || len(task.GetNetworks()) != 0 {
					t.Fatalf("waiting task placed or attached: %v", task)
				}
				waiting++
			}
		}
		return assigned == 5 && waiting == 1
	})
	setReplicas(h, 3)
	h.waitFor("3 live tasks, the waiting one gone", func(tx raftstore.ReadTx) bool {
		live := liveTasks(tx, "svc")
		for _, task := range live {
			if task.GetStatus().GetState() == minkepb.TaskState_NEW {
				return false
			}
		}
		return len(live) == 3
	})
	var total int
	_ = h.store.View(func(tx raftstore.ReadTx) error { total = len(tx.TasksByService("svc")); return nil })
	if total > 6 {
		t.Fatalf("%d tasks created for 6 slots: the waiting task was churned", total)
	}
}

// TestGlobalTasksWaitOnAFullNetwork: a global service on a network with
// room for 5 tasks and 7 nodes runs 5 tasks; the other 2 wait on their
// nodes (NEW, never started), and the orchestrator settles instead of
// replacing them.
func TestGlobalTasksWaitOnAFullNetwork(t *testing.T) {
	s := newSim(t)
	s.update(func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: "net"}, Spec: &minkepb.NetworkSpec{Name: "front"},
			Subnet: "10.10.0.0/29", Gateway: "10.10.0.1", Vni: 4096})
	})
	for i := 1; i <= 7; i++ {
		s.addNode(fmt.Sprintf("n%d", i), nil)
	}
	spec := globalSpec()
	spec.Task.Networks = []*minkepb.NetworkAttachmentConfig{{Target: "net"}}
	s.createService("svc", spec)
	s.converge(100)
	waiting := 0
	s.view(func(tx raftstore.ReadTx) {
		for _, task := range tx.TasksByService("svc") {
			if task.GetStatus().GetState() == minkepb.TaskState_NEW {
				if task.GetNodeId() == "" || len(task.GetNetworks()) != 0 {
					t.Errorf("waiting task %v", task)
				}
				waiting++
			}
		}
		if n := len(tx.TasksByService("svc")); n != 7 {
			t.Errorf("%d tasks for 7 nodes:\n%s", n, s.dump())
		}
	})
	if got := len(s.running("svc")); got != 5 || waiting != 2 {
		t.Fatalf("%d running and %d waiting, want 5 and 2:\n%s", got, waiting, s.dump())
	}
}
