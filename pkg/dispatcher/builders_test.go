package dispatcher

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

// recvAll receives a session's messages on a channel until the stream ends.
func recvAll(stream minkepb.Dispatcher_SessionClient) (<-chan *minkepb.SessionMessage, <-chan error) {
	msgs, errc := make(chan *minkepb.SessionMessage, 16), make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			msgs <- m
		}
	}()
	return msgs, errc
}

func openPacedSession(t *testing.T, f *fixture, node string) (<-chan *minkepb.SessionMessage, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(asNode(node), 30*time.Second)
	t.Cleanup(cancel)
	stream, err := f.client.Session(ctx, &minkepb.SessionRequest{NodeId: node, Deltas: true})
	if err != nil {
		t.Fatal(err)
	}
	msgs, errc := recvAll(stream)
	select {
	case <-msgs: // the first, complete, message
	case err := <-errc:
		t.Fatalf("session: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no first message in 10s")
	}
	return msgs, errc
}

func nextMessage(t *testing.T, msgs <-chan *minkepb.SessionMessage, errc <-chan error, within time.Duration) *minkepb.SessionMessage {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case err := <-errc:
		t.Fatalf("session ended: %v", err)
	case <-time.After(within):
		t.Fatalf("no message within %v", within)
	}
	return nil
}

func taskIDs(m *minkepb.SessionMessage) []string {
	var ids []string
	for _, t := range m.GetTasks() {
		ids = append(ids, t.GetMeta().GetId())
	}
	return ids
}

// Changes that come sooner than the pace after a session's last message
// go out together, in one message, once the pace has passed.
func TestSessionPaceMergesChanges(t *testing.T) {
	f := newFixture(t)
	const pace = time.Second
	f.disp.paceOverride.Store(int64(pace))
	putNode(t, f, "n1")
	msgs, errc := openPacedSession(t, f, "n1")
	began := time.Now()
	for _, id := range []string{"t1", "t2", "t3"} {
		putTask(t, f, id, "n1", minkepb.TaskState_ASSIGNED)
	}
	if time.Since(began) > pace/2 {
		t.Skipf("three commits took %v, too long to test a pace of %v", time.Since(began), pace)
	}
	m := nextMessage(t, msgs, errc, 10*time.Second)
	if waited := time.Since(began); waited < pace/2 {
		t.Errorf("next message after %v, sooner than the pace of %v allows", waited, pace)
	}
	if ids := taskIDs(m); len(ids) != 3 || !m.GetTasksDelta() {
		t.Fatalf("paced message carries tasks %v (delta %v), want t1, t2 and t3 together", ids, m.GetTasksDelta())
	}
	select {
	case extra := <-msgs:
		t.Fatalf("a further message for changes already sent: %v", extra)
	case <-time.After(2 * pace):
	}

	// A session quiet for longer than the pace sends at once.
	began = time.Now()
	putTask(t, f, "t4", "n1", minkepb.TaskState_ASSIGNED)
	m = nextMessage(t, msgs, errc, 10*time.Second)
	if ids := taskIDs(m); len(ids) != 1 || ids[0] != "t4" {
		t.Fatalf("message carries tasks %v, want t4", ids)
	}
	if waited := time.Since(began); waited > pace/2 {
		t.Errorf("a change after a quiet pace took %v", waited)
	}
}

// A change that takes something away from every node's network state
// overtakes the pace, and carries what waited for it.
func TestUrgentNetworkChangeSkipsPace(t *testing.T) {
	f := newFixture(t)
	f.disp.paceOverride.Store(int64(time.Hour))
	putNode(t, f, "n1")
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "s1"}, Spec: &minkepb.ServiceSpec{Name: "web"}})
	})
	msgs, errc := openPacedSession(t, f, "n1")

	// An assignment and a new service: both wait for the hour.
	putTask(t, f, "t1", "n1", minkepb.TaskState_ASSIGNED)
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "s2"}, Spec: &minkepb.ServiceSpec{Name: "api"}})
	})
	select {
	case m := <-msgs:
		t.Fatalf("a message before the pace for additions only: %v", m)
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(time.Second):
	}

	// Removing a service is urgent.
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error { return tx.Delete(tx.Service("s1")) })
	m := nextMessage(t, msgs, errc, 10*time.Second)
	d := m.GetNetworkDelta()
	if len(d.GetRemovedServices()) != 1 || d.GetRemovedServices()[0] != "s1" {
		t.Errorf("urgent message removes services %v, want s1", d.GetRemovedServices())
	}
	if len(d.GetServices()) != 1 || d.GetServices()[0].GetId() != "s2" {
		t.Errorf("urgent message adds services %v, want s2, which waited for it", d.GetServices())
	}
	if ids := taskIDs(m); len(ids) != 1 || ids[0] != "t1" {
		t.Errorf("urgent message carries tasks %v, want t1, which waited for it", ids)
	}
}

func TestUrgentNetworkChange(t *testing.T) {
	task := func(state, desired minkepb.TaskState, health minkepb.HealthState) *minkepb.Task {
		return &minkepb.Task{DesiredState: desired, Status: &minkepb.TaskStatus{State: state,
			Container: &minkepb.ContainerStatus{Address: "10.0.0.2/24", Health: health}}}
	}
	run := minkepb.TaskState_RUNNING
	for _, tc := range []struct {
		name string
		ev   raftstore.Event
		want bool
	}{
		{"task starts running", raftstore.Event{Kind: raftstore.EventUpdate, Object: task(run, run, minkepb.HealthState_NO_HEALTHCHECK)}, false},
		{"task healthy", raftstore.Event{Kind: raftstore.EventUpdate, Object: task(run, run, minkepb.HealthState_HEALTHY)}, false},
		{"task created on an overlay", raftstore.Event{Kind: raftstore.EventCreate, Object: task(minkepb.TaskState_PENDING, run, 0)}, false},
		{"task unhealthy", raftstore.Event{Kind: raftstore.EventUpdate, Object: task(run, run, minkepb.HealthState_UNHEALTHY)}, true},
		{"task to be shut down", raftstore.Event{Kind: raftstore.EventUpdate, Object: task(run, minkepb.TaskState_SHUTDOWN, 0)}, true},
		{"task failed", raftstore.Event{Kind: raftstore.EventUpdate, Object: task(minkepb.TaskState_FAILED, run, 0)}, true},
		{"task removed", raftstore.Event{Kind: raftstore.EventRemove, Object: task(run, run, 0)}, true},
		{"node ready", raftstore.Event{Kind: raftstore.EventUpdate, Object: &minkepb.Node{Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}}}, false},
		{"node down", raftstore.Event{Kind: raftstore.EventUpdate, Object: &minkepb.Node{Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_DOWN}}}, true},
		{"service created", raftstore.Event{Kind: raftstore.EventCreate, Object: &minkepb.Service{}}, false},
		{"service updated", raftstore.Event{Kind: raftstore.EventUpdate, Object: &minkepb.Service{}}, true},
		{"service removed", raftstore.Event{Kind: raftstore.EventRemove, Object: &minkepb.Service{}}, true},
		{"cluster changed", raftstore.Event{Kind: raftstore.EventUpdate, Object: &minkepb.Cluster{}}, true},
	} {
		if got := urgentNetworkChange(tc.ev); got != tc.want {
			t.Errorf("%s: urgent %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Sessions end once their manager is found not to lead, and new ones are
// ended too until it leads again.
func TestSessionsEndWhenNotLeader(t *testing.T) {
	var leading atomic.Bool
	leading.Store(true)
	f := newFixtureWith(t, func(c *Config) { c.IsLeader = leading.Load })
	putNode(t, f, "n1")
	_, errc := openPacedSession(t, f, "n1")
	leading.Store(false)
	select {
	case err := <-errc:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("session ended with %v, want Unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session still open 10s after leadership was lost")
	}
	leading.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(asNode("n1"), 5*time.Second)
		stream, err := f.client.Session(ctx, &minkepb.SessionRequest{NodeId: "n1"})
		if err == nil {
			_, err = stream.Recv()
			if err == nil {
				// Open: it must stay open while leading.
				msgs, errc := recvAll(stream)
				select {
				case err := <-errc:
					t.Fatalf("session of a leader ended: %v", err)
				case <-msgs:
				case <-time.After(1500 * time.Millisecond):
				}
				cancel()
				return
			}
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("no session 10s after leadership came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSessionQueueIsFIFOAndStops(t *testing.T) {
	q := newSessionQueue()
	a, b := &session{nodeID: "a"}, &session{nodeID: "b"}
	q.push(a)
	q.push(b)
	if s, ok := q.pop(); !ok || s != a {
		t.Fatalf("first pop = %v, %v; want a", s, ok)
	}
	if s, ok := q.pop(); !ok || s != b {
		t.Fatalf("second pop = %v, %v; want b", s, ok)
	}
	done := make(chan bool)
	go func() { _, ok := q.pop(); done <- ok }()
	q.stop()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("pop after stop returned a session")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pop still waiting 5s after stop")
	}
}
