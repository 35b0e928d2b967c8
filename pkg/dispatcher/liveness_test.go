package dispatcher

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

// newLivenessFixture is newFixture with a short session grace period and a
// switchable gossip view.
func newLivenessFixture(t *testing.T, gossiping *atomic.Bool) *fixture {
	return newLivenessFixtureWith(t, gossiping, nil)
}

// newLivenessFixtureWith is newLivenessFixture with the Dispatcher's
// store wrapped by wrap (nil: not wrapped).
func newLivenessFixtureWith(t *testing.T, gossiping *atomic.Bool, wrap func(Store) Store) *fixture {
	t.Helper()
	n := storetest.New(t)
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Cluster{Meta: &minkepb.Meta{Id: "c"}, JoinTokens: &minkepb.JoinTokens{Worker: workerToken}})
	})
	var store Store = n
	if wrap != nil {
		store = wrap(n)
	}
	d := New(Config{Store: store, GossipPeers: func() []string { return nil }, Logger: slog.New(slog.DiscardHandler),
		Gossiping: func(string) bool { return gossiping.Load() }, SessionGracePeriod: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := peerServer(n)
	d.Register(srv)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		cancel()
		<-done
	})
	return &fixture{store: n, client: minkepb.NewDispatcherClient(conn), disp: d}
}

func nodeState(f *fixture, id string) minkepb.NodeStatus_State {
	var s minkepb.NodeStatus_State
	_ = f.store.View(func(tx raftstore.ReadTx) error { s = tx.Node(id).GetStatus().GetState(); return nil })
	return s
}

// openSession opens a session for id and reads its first message; cancel
// closes it.
func openSession(t *testing.T, f *fixture, id string) (minkepb.Dispatcher_SessionClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(asNode(id), 20*time.Second)
	// Sessions are refused until Run's fan-out runs: retry briefly.
	for deadline := time.Now().Add(5 * time.Second); ; {
		s, err := f.client.Session(ctx, &minkepb.SessionRequest{NodeId: id})
		if err == nil {
			if _, err = s.Recv(); err == nil {
				return s, cancel
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("session for %s: %v", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSessionLiveness(t *testing.T) {
	for _, tc := range []struct {
		name      string
		gossiping bool
		after     minkepb.NodeStatus_State // once the session closed and the grace period passed
	}{
		{"without gossip the node is DOWN once its session is gone", false, minkepb.NodeStatus_DOWN},
		{"a gossiping node stays as gossip says", true, minkepb.NodeStatus_READY},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g atomic.Bool
			g.Store(tc.gossiping)
			f := newLivenessFixture(t, &g)
			putNode(t, f, "n1")
			if s := nodeState(f, "n1"); s != minkepb.NodeStatus_UNKNOWN {
				t.Fatalf("before any session: %v", s)
			}
			_, cancel := openSession(t, f, "n1")
			storetest.WaitFor(t, f.store, "n1 READY through its session", func(tx raftstore.ReadTx) bool {
				return tx.Node("n1").GetStatus().GetState() == minkepb.NodeStatus_READY
			})
			if !f.disp.HasSession("n1") || f.disp.HasSession("n2") {
				t.Fatal("HasSession disagrees with the open sessions")
			}
			cancel()
			storetest.WaitFor(t, f.store, "session closed", func(raftstore.ReadTx) bool { return !f.disp.HasSession("n1") })
			if tc.after == minkepb.NodeStatus_DOWN {
				storetest.WaitFor(t, f.store, "n1 DOWN after the grace period", func(tx raftstore.ReadTx) bool {
					return tx.Node("n1").GetStatus().GetState() == minkepb.NodeStatus_DOWN
				})
				// A new session brings it back.
				_, cancel := openSession(t, f, "n1")
				defer cancel()
				storetest.WaitFor(t, f.store, "n1 READY again", func(tx raftstore.ReadTx) bool {
					return tx.Node("n1").GetStatus().GetState() == minkepb.NodeStatus_READY
				})
				return
			}
			// Wait for several grace periods' expiry checks (they run every
			// second) and check that nothing marked the node DOWN.
			deadline := time.Now().Add(2500 * time.Millisecond)
			for time.Now().Before(deadline) {
				if s := nodeState(f, "n1"); s != minkepb.NodeStatus_READY {
					t.Fatalf("gossiping node moved to %v by losing its session", s)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// failingUpdates is a Store whose next Updates fail.
type failingUpdates struct {
	Store
	fail atomic.Int32 // how many of the next Updates fail
}

func (s *failingUpdates) Update(ctx context.Context, fn func(*raftstore.WriteTx) error) error {
	if s.fail.Add(-1) >= 0 {
		return errors.New("injected: commit failed")
	}
	return s.Store.Update(ctx, fn)
}

// TestSessionKeepsNodeReady: a node that holds a session ends up READY
// even when the commit that should have marked it so failed, and when
// another path marked it DOWN after that commit (as a new leader's
// gossip check that read the session as not yet open does); before,
// such a node without gossip stayed DOWN for as long as its session
// lasted. A DOWN that gossip recorded stands, though.
func TestSessionKeepsNodeReady(t *testing.T) {
	var g atomic.Bool // no gossip
	var flaky *failingUpdates
	f := newLivenessFixtureWith(t, &g, func(s Store) Store { flaky = &failingUpdates{Store: s}; return flaky })
	putNode(t, f, "n1")
	flaky.fail.Store(2)
	_, cancel := openSession(t, f, "n1")
	defer cancel()
	storetest.WaitFor(t, f.store, "n1 READY although its first commits failed", func(tx raftstore.ReadTx) bool {
		return tx.Node("n1").GetStatus().GetState() == minkepb.NodeStatus_READY
	})
	if n := flaky.fail.Load(); n >= 0 {
		t.Fatalf("%d injected failures left: the READY did not go through them", n+1)
	}
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		n := proto.Clone(tx.Node("n1")).(*minkepb.Node)
		n.Status.State, n.Status.Message = minkepb.NodeStatus_DOWN, "not in gossip"
		return tx.Update(n)
	})
	storetest.WaitFor(t, f.store, "n1 READY again while its session lasts", func(tx raftstore.ReadTx) bool {
		return tx.Node("n1").GetStatus().GetState() == minkepb.NodeStatus_READY
	})
	// Gossip's DOWN (a frozen host whose session lingers) stands.
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		n := proto.Clone(tx.Node("n1")).(*minkepb.Node)
		n.Status.State, n.Status.Message = minkepb.NodeStatus_DOWN, GossipDownMessage
		return tx.Update(n)
	})
	for deadline := time.Now().Add(2500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if s := nodeState(f, "n1"); s != minkepb.NodeStatus_DOWN {
			t.Fatalf("a node gossip found gone moved to %v by its lingering session", s)
		}
	}
}

// TestSessionSkipsStatusEchoes: a node's own status reports do not come back
// down its session; a change of desired state does.
func TestSessionSkipsStatusEchoes(t *testing.T) {
	var g atomic.Bool
	f := newLivenessFixture(t, &g)
	putNode(t, f, "n1")
	putTask(t, f, "t1", "n1", minkepb.TaskState_ASSIGNED)
	stream, cancel := openSession(t, f, "n1")
	defer cancel()
	storetest.WaitFor(t, f.store, "n1 READY", func(tx raftstore.ReadTx) bool {
		return tx.Node("n1").GetStatus().GetState() == minkepb.NodeStatus_READY
	})
	for _, st := range []minkepb.TaskState{minkepb.TaskState_ACCEPTED, minkepb.TaskState_RUNNING} {
		if _, err := f.client.UpdateTaskStatus(asNode("n1"), &minkepb.UpdateTaskStatusRequest{NodeId: "n1",
			Updates: []*minkepb.TaskStatusUpdate{{TaskId: "t1", Status: &minkepb.TaskStatus{State: st}}}}); err != nil {
			t.Fatal(err)
		}
	}
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		tk := proto.Clone(tx.Task("t1")).(*minkepb.Task)
		tk.DesiredState = minkepb.TaskState_SHUTDOWN
		return tx.Update(tk)
	})
	// The next message must be the shutdown: neither READY nor the two
	// reports produced one.
	msg, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.GetTasks()) != 1 || msg.GetTasks()[0].GetDesiredState() != minkepb.TaskState_SHUTDOWN {
		t.Fatalf("next message %v, want t1 with desired SHUTDOWN", msg.GetTasks())
	}
	if got := msg.GetTasks()[0].GetStatus().GetState(); got != minkepb.TaskState_RUNNING {
		t.Fatalf("the message carries status %v, want the reported RUNNING", got)
	}
}
