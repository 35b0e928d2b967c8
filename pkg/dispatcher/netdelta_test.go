package dispatcher

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/workerapi"
)

// deltaWorld drives random changes to a store's network state: services
// (with VIPs, ingress ports and overlay networks) come and go, tasks start
// and stop on four nodes, nodes go DOWN and come back, networks appear.
type deltaWorld struct {
	t        *testing.T
	st       *raftstore.Node
	rng      *rand.Rand
	services int
	tasks    int
	networks int
}

func newDeltaWorld(t *testing.T, seed uint64) *deltaWorld {
	w := &deltaWorld{t: t, st: storetest.New(t), rng: rand.New(rand.NewPCG(seed, 1))}
	storetest.Update(t, w.st, func(tx *raftstore.WriteTx) error {
		if err := tx.Create(&minkepb.Cluster{Meta: &minkepb.Meta{Id: "c"}, GossipKey: []byte("k")}); err != nil {
			return err
		}
		for i := 1; i <= 4; i++ {
			n := &minkepb.Node{Meta: &minkepb.Meta{Id: fmt.Sprintf("n%d", i)}, Spec: &minkepb.NodeSpec{},
				Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_READY, Addr: fmt.Sprintf("10.0.0.%d", i)},
				Description: &minkepb.NodeDescription{ContainerSubnet: fmt.Sprintf("172.29.%d.0/24", i)}}
			if err := tx.Create(n); err != nil {
				return err
			}
		}
		return nil
	})
	return w
}

// step makes one random change, and reports whether the fan-out would
// count it network-wide (see networkWide): only then does the epoch move.
func (w *deltaWorld) step() (wide bool) {
	wide = true
	storetest.Update(w.t, w.st, func(tx *raftstore.WriteTx) error {
		switch op := w.rng.IntN(11); {
		case op == 10 && w.services > 0: // a task without an address: only its node's session wakes
			w.tasks++
			wide = false
			return tx.Create(&minkepb.Task{Meta: &minkepb.Meta{Id: fmt.Sprintf("t%03d", w.tasks)}, ServiceId: fmt.Sprintf("s%02d", 1+w.rng.IntN(w.services)),
				NodeId: fmt.Sprintf("n%d", 1+w.rng.IntN(4)), DesiredState: minkepb.TaskState_RUNNING, Status: &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED}})
		case op == 0 || w.services == 0: // a service
			w.services++
			id := fmt.Sprintf("s%02d", w.services)
			s := &minkepb.Service{Meta: &minkepb.Meta{Id: id}, Spec: &minkepb.ServiceSpec{Name: "svc-" + id, Task: &minkepb.TaskSpec{}},
				Endpoint: &minkepb.Endpoint{VirtualIp: fmt.Sprintf("172.30.0.%d", w.services)}}
			if w.rng.IntN(3) == 0 {
				s.Endpoint.Ports = []*minkepb.PortConfig{{PublishedPort: uint32(8000 + w.services), TargetPort: 80, PublishMode: minkepb.PortConfig_INGRESS}}
			}
			if w.networks > 0 && w.rng.IntN(2) == 0 {
				nw := fmt.Sprintf("net%d", 1+w.rng.IntN(w.networks))
				s.Spec.Task.Networks = []*minkepb.NetworkAttachmentConfig{{Target: nw, Aliases: []string{"alias-" + id}}}
				s.Endpoint.VirtualIps = []*minkepb.EndpointVirtualIP{{NetworkId: nw, Addr: fmt.Sprintf("10.10.%d.%d/16", w.services, 2)}}
			}
			return tx.Create(s)
		case op == 1 && w.services > 0: // a service removed (its tasks stay, as they may for a while)
			if s := tx.Service(fmt.Sprintf("s%02d", 1+w.rng.IntN(w.services))); s != nil {
				return tx.Delete(s)
			}
		case op == 2: // a node goes DOWN, or comes back
			n := proto.Clone(tx.Node(fmt.Sprintf("n%d", 1+w.rng.IntN(4)))).(*minkepb.Node)
			if n.Status.State == minkepb.NodeStatus_READY {
				n.Status.State = minkepb.NodeStatus_DOWN
			} else {
				n.Status.State = minkepb.NodeStatus_READY
			}
			return tx.Update(n)
		case op == 3: // an overlay network
			w.networks++
			return tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: fmt.Sprintf("net%d", w.networks)},
				Spec: &minkepb.NetworkSpec{Name: fmt.Sprintf("net-%d", w.networks)}, Subnet: fmt.Sprintf("10.10.%d.0/24", w.networks),
				Gateway: fmt.Sprintf("10.10.%d.1", w.networks), Vni: uint32(4096 + w.networks)})
		case op <= 6: // a task
			w.tasks++
			s := tx.Service(fmt.Sprintf("s%02d", 1+w.rng.IntN(w.services)))
			if s == nil {
				return nil
			}
			node := 1 + w.rng.IntN(4)
			t := &minkepb.Task{Meta: &minkepb.Meta{Id: fmt.Sprintf("t%03d", w.tasks)}, ServiceId: s.GetMeta().GetId(), NodeId: fmt.Sprintf("n%d", node),
				DesiredState: minkepb.TaskState_RUNNING, Status: &minkepb.TaskStatus{State: minkepb.TaskState_RUNNING,
					Container: &minkepb.ContainerStatus{Address: fmt.Sprintf("172.29.%d.%d/24", node, 2+w.tasks)}}}
			for _, cfg := range s.GetSpec().GetTask().GetNetworks() {
				t.Networks = append(t.Networks, &minkepb.NetworkAttachment{NetworkId: cfg.GetTarget(),
					Addresses: []string{fmt.Sprintf("10.10.%d.%d/24", 100+w.tasks/200, 3+w.tasks%200)}})
			}
			return tx.Create(t)
		default: // a task stops or ends
			if w.tasks == 0 {
				return nil
			}
			t := tx.Task(fmt.Sprintf("t%03d", 1+w.rng.IntN(w.tasks)))
			if t == nil {
				return nil
			}
			t = proto.Clone(t).(*minkepb.Task)
			switch w.rng.IntN(3) {
			case 0:
				t.DesiredState = minkepb.TaskState_SHUTDOWN
			case 1:
				t.Status.State = minkepb.TaskState_FAILED
			default:
				return tx.Delete(t)
			}
			return tx.Update(t)
		}
		return nil
	})
	return wide
}

// TestNetworkDeltasRebuildTheState: a worker that merges the deltas of
// its session holds exactly the complete state a worker without deltas
// gets, after every one of many random changes, including sessions that
// build a message only now and then (deltas over several generations),
// one that falls further behind than the cache keeps (which gets the
// complete state again), and a new session (complete again). Once
// started, deltas carry only changed records.
func TestNetworkDeltasRebuildTheState(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			w := newDeltaWorld(t, seed)
			d := New(Config{Store: w.st, Logger: slog.New(slog.DiscardHandler)})
			type worker struct {
				s     *sessionState
				view  workerapi.NetworkView
				every int // builds a message every so many steps
			}
			var workers []*worker
			for i := 1; i <= 4; i++ {
				workers = append(workers, &worker{s: &sessionState{nodeID: fmt.Sprintf("n%d", i), deltas: true}, every: 1 + (i-1)%3})
			}
			lagging := &worker{s: &sessionState{nodeID: "n1", deltas: true}, every: netHistory + 5}
			workers = append(workers, lagging)
			deltas, completes, sharedEncodings := 0, 0, 0
			for step := range 3 * (netHistory + 5) {
				epoch := d.fan.netEpoch.Load()
				if w.step() {
					epoch = d.fan.netEpoch.Add(1)
				}
				for _, wk := range workers {
					if step%wk.every != 0 {
						// Another session's read computes the generation.
						_ = w.st.View(func(tx raftstore.ReadTx) error { d.net.get(tx, epoch); return nil })
						continue
					}
					_ = w.st.View(func(tx raftstore.ReadTx) error {
						started := wk.s.started
						// What the worker decodes from the wire, where the
						// records shared with other sessions are encoded
						// once (see outgoing).
						msg, shared := onWire(t, d.nextMessage(tx, wk.s, epoch))
						if shared {
							sharedEncodings++
						}
						if started && msg.GetNetwork() != nil {
							completes++
							if wk != lagging {
								t.Fatalf("step %d, node %s: a complete state to a session that is not behind", step, wk.s.nodeID)
							}
						}
						if msg.GetNetworkDelta() != nil {
							deltas++
						}
						wk.view.Update(msg)
						want, _ := forNode(tx, readNode(tx, wk.s.nodeID), d.net.get(tx, epoch))
						if got := wk.view.State(); !proto.Equal(got, want) {
							t.Fatalf("step %d, node %s: merged state\n%v\nwant\n%v", step, wk.s.nodeID, got, want)
						}
						return nil
					})
				}
			}
			if deltas == 0 || completes == 0 || sharedEncodings == 0 {
				t.Fatalf("%d delta messages, %d complete states to a started session, %d with shared encodings: want all",
					deltas, completes, sharedEncodings)
			}
		})
	}
}

// TestNetworkDeltaCarriesOnlyChanges: once a worker has the state, a new
// service costs it that service's record, not every service's; a node
// going DOWN removes its route; the node's own route is never sent.
func TestNetworkDeltaCarriesOnlyChanges(t *testing.T) {
	w := newDeltaWorld(t, 9)
	d := New(Config{Store: w.st, Logger: slog.New(slog.DiscardHandler)})
	for i := range 20 {
		storetest.Update(t, w.st, func(tx *raftstore.WriteTx) error {
			return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: fmt.Sprintf("s%02d", i)}, Spec: &minkepb.ServiceSpec{Name: fmt.Sprint("svc", i)}})
		})
	}
	s := &sessionState{nodeID: "n1", deltas: true}
	next := func() (msg *minkepb.SessionMessage) {
		epoch := d.fan.netEpoch.Add(1)
		_ = w.st.View(func(tx raftstore.ReadTx) error { msg = d.sessionMessage(tx, s, epoch); return nil })
		return msg
	}
	first := next()
	if n := len(first.GetNetwork().GetServices()); n != 20 || len(first.GetNetwork().GetRoutes()) != 3 {
		t.Fatalf("first message: %d services and routes %v; want 20, and the 3 other nodes' routes", n, first.GetNetwork().GetRoutes())
	}
	storetest.Update(t, w.st, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "s99"}, Spec: &minkepb.ServiceSpec{Name: "new"}})
	})
	msg := next()
	if nd := msg.GetNetworkDelta(); msg.GetNetwork() != nil || len(nd.GetServices()) != 1 || nd.GetServices()[0].GetName() != "new" ||
		len(nd.GetRoutes())+len(nd.GetRemovedRoutes())+len(nd.GetRemovedServices()) != 0 {
		t.Fatalf("after one new service: network %v, delta %v; want a delta with that service only", msg.GetNetwork(), nd)
	}
	if !msg.GetTasksDelta() || msg.GetNode() != nil || msg.GetCaCerts() != nil || msg.GetGossipKeyring() != nil {
		t.Errorf("a network change alone: tasks_delta %v, node %v, %d bytes of roots, keyring %v; want a tasks delta and nothing unchanged",
			msg.GetTasksDelta(), msg.GetNode(), len(msg.GetCaCerts()), msg.GetGossipKeyring())
	}
	if again := next(); again != nil {
		t.Fatalf("nothing changed, yet a message: %v", again)
	}
	for _, id := range []string{"n1", "n3"} { // n1's own route is not the worker's to have
		storetest.Update(t, w.st, func(tx *raftstore.WriteTx) error {
			n := proto.Clone(tx.Node(id)).(*minkepb.Node)
			n.Status.State = minkepb.NodeStatus_DOWN
			return tx.Update(n)
		})
	}
	msg = next()
	if nd := msg.GetNetworkDelta(); len(nd.GetRemovedRoutes()) != 2 || len(nd.GetRoutes())+len(nd.GetServices()) != 0 {
		t.Fatalf("after n1 and n3 went DOWN: delta %v; want their 2 routes removed and nothing else", nd)
	}
	storetest.Update(t, w.st, func(tx *raftstore.WriteTx) error {
		n := proto.Clone(tx.Node("n1")).(*minkepb.Node)
		n.Status.State = minkepb.NodeStatus_READY
		return tx.Update(n)
	})
	if msg = next(); msg.GetNetworkDelta() != nil || msg.GetNetwork() != nil {
		t.Fatalf("n1 READY again: network %v, delta %v; want no change of n1's own network state", msg.GetNetwork(), msg.GetNetworkDelta())
	}
}

// TestTaskDeltas: after the complete set, a worker with deltas gets the
// new or changed assignments and the removed IDs; one without gets the
// complete set every time.
func TestTaskDeltas(t *testing.T) {
	w := newDeltaWorld(t, 5)
	d := New(Config{Store: w.st, Logger: slog.New(slog.DiscardHandler)})
	task := func(id string, desired minkepb.TaskState) {
		storetest.Update(t, w.st, func(tx *raftstore.WriteTx) error {
			if old := tx.Task(id); old != nil {
				t := proto.Clone(old).(*minkepb.Task)
				t.DesiredState = desired
				return tx.Update(t)
			}
			return tx.Create(&minkepb.Task{Meta: &minkepb.Meta{Id: id}, NodeId: "n1", DesiredState: desired,
				Status: &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED}})
		})
	}
	ids := func(ts []*minkepb.Task) (out []string) {
		for _, t := range ts {
			out = append(out, t.GetMeta().GetId())
		}
		return out
	}
	task("t1", minkepb.TaskState_RUNNING)
	task("t2", minkepb.TaskState_RUNNING)
	withDeltas, without := &sessionState{nodeID: "n1", deltas: true}, &sessionState{nodeID: "n1"}
	next := func(s *sessionState) (msg *minkepb.SessionMessage) {
		_ = w.st.View(func(tx raftstore.ReadTx) error { msg = d.sessionMessage(tx, s, 0); return nil })
		return msg
	}
	for _, s := range []*sessionState{withDeltas, without} {
		if m := next(s); m.GetTasksDelta() || !equal(ids(m.GetTasks()), []string{"t1", "t2"}) || m.GetNode() == nil {
			t.Fatalf("deltas=%v: first message tasks_delta=%v tasks %v node %v; want the complete set and the node", s.deltas, m.GetTasksDelta(), ids(m.GetTasks()), m.GetNode())
		}
	}
	task("t3", minkepb.TaskState_RUNNING)
	task("t1", minkepb.TaskState_SHUTDOWN)
	storetest.Update(t, w.st, func(tx *raftstore.WriteTx) error { return tx.Delete(tx.Task("t2")) })
	m := next(withDeltas)
	if !m.GetTasksDelta() || !equal(ids(m.GetTasks()), []string{"t1", "t3"}) || !equal(m.GetRemovedTaskIds(), []string{"t2"}) {
		t.Fatalf("with deltas: tasks_delta=%v tasks %v removed %v; want t1 (now SHUTDOWN) and t3, t2 removed", m.GetTasksDelta(), ids(m.GetTasks()), m.GetRemovedTaskIds())
	}
	m = next(without)
	if m.GetTasksDelta() || !equal(ids(m.GetTasks()), []string{"t1", "t3"}) || len(m.GetRemovedTaskIds()) != 0 || m.GetNode() == nil {
		t.Fatalf("without deltas: tasks_delta=%v tasks %v removed %v node %v; want the complete set t1, t3 with the node",
			m.GetTasksDelta(), ids(m.GetTasks()), m.GetRemovedTaskIds(), m.GetNode())
	}
	// A status report of the worker's own changes nothing it acts on.
	storetest.Update(t, w.st, func(tx *raftstore.WriteTx) error {
		t := proto.Clone(tx.Task("t3")).(*minkepb.Task)
		t.Status.State = minkepb.TaskState_RUNNING
		return tx.Update(t)
	})
	if m := next(withDeltas); m != nil {
		t.Fatalf("after a status echo: %v; want no message", m)
	}
}

// TestSessionDeltasAndReconnect: over a real session, a worker that
// announces deltas gets the complete set and state first, then changes
// only; when it reconnects, its new session starts complete again. A
// worker that does not announce them (an older one) keeps getting
// complete messages.
func TestSessionDeltasAndReconnect(t *testing.T) {
	f := newFixture(t)
	putNode(t, f, "n1")
	service := func(id string) {
		updateStore(t, f, func(tx *raftstore.WriteTx) error {
			return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: id}, Spec: &minkepb.ServiceSpec{Name: "web-" + id}})
		})
	}
	service("s1")
	putTask(t, f, "t1", "n1", minkepb.TaskState_ASSIGNED)
	open := func(deltas bool) (minkepb.Dispatcher_SessionClient, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(asNode("n1"), 10*time.Second)
		stream, err := f.client.Session(ctx, &minkepb.SessionRequest{NodeId: "n1", Deltas: deltas})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return stream, cancel
	}
	stream, cancel := open(true)
	first, err := stream.Recv()
	if err != nil || first.GetTasksDelta() || len(first.GetTasks()) != 1 || len(first.GetNetwork().GetServices()) != 1 || first.GetNode() == nil {
		cancel()
		t.Fatalf("first message %v (err %v): want the complete set (t1), state (s1) and node", first, err)
	}
	putTask(t, f, "t2", "n1", minkepb.TaskState_ASSIGNED)
	service("s2")
	// The assignment and the service may come in one message or two.
	var tasks, services []string
	for len(tasks) == 0 || len(services) == 0 {
		msg, err := stream.Recv()
		if err != nil || !msg.GetTasksDelta() || msg.GetNetwork() != nil || msg.GetNode() != nil {
			cancel()
			t.Fatalf("later message %v (err %v): want a delta without the unchanged node or a complete state", msg, err)
		}
		for _, tk := range msg.GetTasks() {
			tasks = append(tasks, tk.GetMeta().GetId())
		}
		for _, s := range msg.GetNetworkDelta().GetServices() {
			services = append(services, s.GetId())
		}
	}
	cancel()
	if !equal(tasks, []string{"t2"}) || !equal(services, []string{"s2"}) {
		t.Fatalf("deltas: tasks %v, services %v; want t2 and s2 only", tasks, services)
	}
	for _, deltas := range []bool{true, false} {
		stream, cancel := open(deltas)
		msg, err := stream.Recv()
		cancel()
		if err != nil || msg.GetTasksDelta() || len(msg.GetTasks()) != 2 || len(msg.GetNetwork().GetServices()) != 2 || msg.GetNetworkDelta() != nil {
			t.Fatalf("deltas=%v, new session: first message %v (err %v); want the complete set and state", deltas, msg, err)
		}
	}
}
