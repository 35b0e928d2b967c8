package dispatcher

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// netCacheFixture stores three READY nodes with subnets, a DOWN one, a
// READY one without a subnet, two services (one with an ingress port) and
// tasks with and without addresses spread over them.
func netCacheFixture(t *testing.T) *fixture {
	f := newFixture(t)
	updateStore(t, f, func(tx *raftstore.WriteTx) error {
		for i, st := range []minkepb.NodeStatus_State{minkepb.NodeStatus_READY, minkepb.NodeStatus_READY,
			minkepb.NodeStatus_READY, minkepb.NodeStatus_DOWN, minkepb.NodeStatus_READY} {
			subnet := fmt.Sprintf("172.29.%d.0/24", i+1)
			if i == 4 {
				subnet = ""
			}
			if err := tx.Create(&minkepb.Node{Meta: &minkepb.Meta{Id: fmt.Sprintf("n%d", i+1)},
				Status:      &minkepb.NodeStatus{State: st, Addr: fmt.Sprintf("10.0.0.%d", i+1)},
				Description: &minkepb.NodeDescription{ContainerSubnet: subnet}}); err != nil {
				return err
			}
		}
		for i, ep := range []*minkepb.Endpoint{
			{VirtualIp: "172.30.0.1", Ports: []*minkepb.PortConfig{{PublishedPort: 8080, TargetPort: 80, PublishMode: minkepb.PortConfig_INGRESS}}},
			{VirtualIp: "172.30.0.2"},
		} {
			if err := tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: fmt.Sprintf("s%d", i+1)},
				Spec: &minkepb.ServiceSpec{Name: fmt.Sprintf("web%d", i+1)}, Endpoint: ep}); err != nil {
				return err
			}
		}
		for i := range 12 {
			addr := ""
			if i%3 != 0 {
				addr = fmt.Sprintf("172.29.%d.%d/24", i%5+1, i+2)
			}
			if err := tx.Create(&minkepb.Task{Meta: &minkepb.Meta{Id: fmt.Sprintf("t%02d", i)},
				ServiceId: fmt.Sprintf("s%d", i%2+1), NodeId: fmt.Sprintf("n%d", i%5+1), DesiredState: minkepb.TaskState_RUNNING,
				Status: &minkepb.TaskStatus{State: minkepb.TaskState_RUNNING, Container: &minkepb.ContainerStatus{Address: addr}}}); err != nil {
				return err
			}
		}
		return nil
	})
	return f
}

// TestForNodeEqualsNetworkState: a session's state built from the shared
// part is exactly networkState for its node, for every kind of node, and
// equal states have equal fingerprints, different ones different.
func TestForNodeEqualsNetworkState(t *testing.T) {
	f := netCacheFixture(t)
	_ = f.store.View(func(tx raftstore.ReadTx) error {
		shared := newSharedNet(tx, nil)
		seen := map[string]*minkepb.NetworkState{}
		for _, id := range []string{"n1", "n2", "n3", "n4", "n5", "unknown"} {
			got, ver := forNode(tx, readNode(tx, id), shared)
			want := networkState(tx, id)
			if !proto.Equal(got, want) {
				t.Errorf("node %s: forNode gives\n%v\nwant networkState's\n%v", id, got, want)
			}
			for otherVer, other := range seen {
				if same := proto.Equal(other, got); same != (otherVer == ver) {
					t.Errorf("node %s: fingerprint %s vs %s, but states equal=%v", id, ver, otherVer, same)
				}
			}
			seen[ver] = got
		}
		if len(shared.state.GetRoutes()) != 3 {
			t.Errorf("shared routes %v: want the 3 READY nodes with subnets", shared.state.GetRoutes())
		}
		return nil
	})
}

// TestNetCacheEpochs: one computation per epoch; a new epoch sees the
// changes committed before it.
func TestNetCacheEpochs(t *testing.T) {
	f := netCacheFixture(t)
	var c netCache
	get := func(epoch uint64) (st *minkepb.NetworkState) {
		_ = f.store.View(func(tx raftstore.ReadTx) error { st = c.get(tx, epoch).state; return nil })
		return st
	}
	first := get(1)
	updateStore(t, f, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "s3"}, Spec: &minkepb.ServiceSpec{Name: "web3"}})
	})
	if again := get(1); again != first {
		t.Fatalf("epoch 1 computed twice")
	}
	next := get(2)
	if len(next.GetServices()) != 3 || len(first.GetServices()) != 2 {
		t.Fatalf("services: epoch 1 has %d (want 2), epoch 2 has %d (want 3)", len(first.GetServices()), len(next.GetServices()))
	}
	// A session still at an older epoch gets the newer state.
	if get(1) != next || get(2) != next {
		t.Fatalf("an older epoch's read did not get, or replaced, epoch 2's state")
	}
}

// TestNetWideDelay: the gathering window grows with the cost of the last
// change (the shared state and the sessions' messages), within its
// bounds.
func TestNetWideDelay(t *testing.T) {
	for _, tc := range []struct {
		cost, fan, want time.Duration
	}{
		{0, 0, 0},
		{time.Millisecond, 0, 10 * time.Millisecond},
		{30 * time.Millisecond, 0, 300 * time.Millisecond},
		{time.Millisecond, 9 * time.Millisecond, 100 * time.Millisecond},
		{time.Second, 0, netWideMaxDelay},
		{0, time.Second, netWideMaxDelay},
	} {
		var c netCache
		c.cost.Store(int64(tc.cost))
		c.prevCost.Store(int64(tc.cost))
		c.fanCost.Store(int64(tc.fan)) // the window before last
		c.fanning.Add(int64(tc.fan))   // the last window
		if got := c.netWideDelay(); got != tc.want {
			t.Errorf("cost %s, sessions %s: delay %s, want %s", tc.cost, tc.fan, got, tc.want)
		}
	}
	// One slow computation after fast ones does not lengthen the window.
	var c netCache
	c.prevCost.Store(int64(time.Millisecond))
	c.cost.Store(int64(time.Second))
	if got := c.netWideDelay(); got != 10*time.Millisecond {
		t.Errorf("one slow computation: delay %s, want %s", got, 10*time.Millisecond)
	}
	// Nor does one window whose sessions were slow.
	c.fanning.Add(int64(time.Second))
	if got := c.netWideDelay(); got != 10*time.Millisecond {
		t.Errorf("one slow window of sessions: delay %s, want %s", got, 10*time.Millisecond)
	}
	c.fanning.Add(int64(time.Second))
	if got := c.netWideDelay(); got != netWideMaxDelay {
		t.Errorf("two slow windows of sessions: delay %s, want %s", got, netWideMaxDelay)
	}
}

// TestSessionSendsNetworkWhenChanged: the first message carries the
// network state; one for an assignment change alone leaves it out (the
// worker keeps its own); a network-wide change sends it again.
func TestSessionSendsNetworkWhenChanged(t *testing.T) {
	f := newFixture(t)
	putNode(t, f, "n1")
	service := func(id, vip string) {
		updateStore(t, f, func(tx *raftstore.WriteTx) error {
			return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: id}, Spec: &minkepb.ServiceSpec{Name: "web-" + id},
				Endpoint: &minkepb.Endpoint{VirtualIp: vip}})
		})
	}
	service("s1", "172.30.0.1")
	ctx, cancel := context.WithTimeout(asNode("n1"), 10*time.Second)
	defer cancel()
	stream, err := f.client.Session(ctx, &minkepb.SessionRequest{NodeId: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || len(first.GetNetwork().GetServices()) != 1 {
		t.Fatalf("first message: network %v, err %v; want the one service", first.GetNetwork(), err)
	}
	putTask(t, f, "t1", "n1", minkepb.TaskState_ASSIGNED)
	msg, err := stream.Recv()
	if err != nil || len(msg.GetTasks()) != 1 || msg.Network != nil {
		t.Fatalf("after an assignment: tasks %v, network %v, err %v; want t1 and no network state", msg.GetTasks(), msg.GetNetwork(), err)
	}
	service("s2", "172.30.0.2")
	msg, err = stream.Recv()
	if err != nil || len(msg.GetNetwork().GetServices()) != 2 {
		t.Fatalf("after a new service: network %v, err %v; want both services", msg.GetNetwork(), err)
	}
}

// TestClusterCache: the derived values follow the cluster record, which is
// replaced (never changed) on every update.
func TestClusterCache(t *testing.T) {
	var cc clusterCache
	a := &minkepb.Cluster{GossipKey: []byte("k1")}
	kr := cc.get(a).keyring
	if string(kr.GetPrimary()) != "k1" {
		t.Fatalf("keyring %v, want primary k1", kr)
	}
	b := &minkepb.Cluster{GossipKey: []byte("k2")}
	if kr := cc.get(b).keyring; string(kr.GetPrimary()) != "k2" {
		t.Fatalf("after a new record: keyring %v, want primary k2", kr)
	}
	if kr := cc.get(nil).keyring; kr != nil {
		t.Fatalf("no cluster: keyring %v, want none", kr)
	}
}

// TestSharedNetReusesOnlyUnchangedBackends: each generation reuses the
// backends of the services whose tasks did not change since the one
// before, and yet equals the state computed afresh, through random task,
// node and service changes.
func TestSharedNetReusesOnlyUnchangedBackends(t *testing.T) {
	f := netCacheFixture(t)
	rng := rand.New(rand.NewPCG(1, 2))
	states := []minkepb.TaskState{minkepb.TaskState_ASSIGNED, minkepb.TaskState_RUNNING, minkepb.TaskState_RUNNING, minkepb.TaskState_FAILED}
	healths := []minkepb.HealthState{minkepb.HealthState_NO_HEALTHCHECK, minkepb.HealthState_HEALTHY, minkepb.HealthState_UNHEALTHY, minkepb.HealthState_HEALTH_STARTING}
	var prev *sharedNet
	reused := 0
	for step := range 150 {
		updateStore(t, f, func(tx *raftstore.WriteTx) error {
			switch op := rng.IntN(6); op {
			case 0, 1, 2: // a task's state, health, address, desired state or node
				tasks := tx.Tasks()
				tk := proto.Clone(tasks[rng.IntN(len(tasks))]).(*minkepb.Task)
				switch rng.IntN(5) {
				case 0:
					tk.Status.State = states[rng.IntN(len(states))]
				case 1:
					tk.Status.Container = &minkepb.ContainerStatus{Address: tk.GetStatus().GetContainer().GetAddress(), Health: healths[rng.IntN(len(healths))]}
				case 2:
					tk.Status.Container = &minkepb.ContainerStatus{Address: fmt.Sprintf("172.29.%d.%d/24", rng.IntN(5)+1, rng.IntN(200)+2)}
				case 3:
					tk.DesiredState = []minkepb.TaskState{minkepb.TaskState_RUNNING, minkepb.TaskState_SHUTDOWN}[rng.IntN(2)]
				default:
					tk.NodeId = fmt.Sprintf("n%d", rng.IntN(5)+1)
				}
				return tx.Update(tk)
			case 3: // a node goes DOWN or comes back
				n := proto.Clone(tx.Node(fmt.Sprintf("n%d", rng.IntN(5)+1))).(*minkepb.Node)
				n.Status.State = []minkepb.NodeStatus_State{minkepb.NodeStatus_READY, minkepb.NodeStatus_DOWN}[rng.IntN(2)]
				return tx.Update(n)
			case 4: // a task comes or goes
				if tasks := tx.Tasks(); len(tasks) > 4 && rng.IntN(2) == 0 {
					return tx.Delete(tasks[rng.IntN(len(tasks))])
				}
				return tx.Create(&minkepb.Task{Meta: &minkepb.Meta{Id: raftstore.NewID()}, ServiceId: fmt.Sprintf("s%d", rng.IntN(3)+1),
					NodeId: fmt.Sprintf("n%d", rng.IntN(5)+1), DesiredState: minkepb.TaskState_RUNNING,
					Status: &minkepb.TaskStatus{State: minkepb.TaskState_RUNNING, Container: &minkepb.ContainerStatus{Address: fmt.Sprintf("172.29.1.%d/24", step+10)}}})
			default: // a service comes or goes (its tasks stay, as orphans would)
				if s := tx.Service("s3"); s != nil {
					return tx.Delete(s)
				}
				return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "s3"}, Spec: &minkepb.ServiceSpec{Name: "web3"}, Endpoint: &minkepb.Endpoint{VirtualIp: "172.30.0.3"}})
			}
		})
		_ = f.store.View(func(tx raftstore.ReadTx) error {
			cur := newSharedNet(tx, prev)
			if want := networkState(tx, ""); !proto.Equal(cur.state, want) {
				t.Fatalf("step %d: the shared state reusing the last one's backends is\n%v\nafresh it is\n%v", step, cur.state, want)
			}
			if prev != nil {
				for id, sb := range cur.seen.services {
					if old, ok := prev.seen.services[id]; ok && old.tasksChanged == sb.tasksChanged && maps.Equal(prev.seen.ready, cur.seen.ready) {
						reused++
					}
				}
			}
			prev = cur
			return nil
		})
	}
	if reused == 0 {
		t.Fatal("no generation reused a service's backends")
	}
}
