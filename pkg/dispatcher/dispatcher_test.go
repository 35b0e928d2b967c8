package dispatcher

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Test tokens: well-formed, pinned to a made-up CA.
var (
	workerToken = ca.RepinToken(ca.RoleWorker, []byte("test CA"), "00000000000000000000000000000001")
	otherToken  = ca.RepinToken(ca.RoleWorker, []byte("test CA"), "00000000000000000000000000000002")
	newToken    = ca.RepinToken(ca.RoleWorker, []byte("test CA"), "00000000000000000000000000000003")
)

type fixture struct {
	store  *raftstore.Node
	client minkepb.DispatcherClient
	disp   *Dispatcher
}

func newFixture(t *testing.T) *fixture { t.Helper(); return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with the dispatcher's Config changed by
// configure first.
func newFixtureWith(t *testing.T, configure func(*Config)) *fixture {
	t.Helper()
	n := storetest.New(t)
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Cluster{Meta: &minkepb.Meta{Id: "c"}, JoinTokens: &minkepb.JoinTokens{Worker: workerToken}, GossipKey: []byte("k")})
	})
	cfg := Config{Store: n, GossipPeers: func() []string { return []string{"127.0.0.1:4244"} }, RegistryAddr: "127.0.0.1:4245",
		Logger: slog.New(slog.DiscardHandler)}
	if configure != nil {
		configure(&cfg)
	}
	d := New(cfg)
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

// peerFromSecret stands in for the manager's TLS authorization layer
// (tested in test/trust): a node that a test call names in metadata, with
// its secret, is the caller whose certificate was verified; a node not in
// the store stands for a removed node's still-valid certificate.
func peerFromSecret(store *raftstore.Node) func(context.Context) context.Context {
	return func(ctx context.Context) context.Context {
		md, _ := metadata.FromIncomingContext(ctx)
		id, secret := md.Get(NodeIDMetadataKey), md.Get(NodeSecretMetadataKey)
		if len(id) == 0 || len(secret) == 0 {
			return ctx
		}
		ok := false
		_ = store.View(func(tx raftstore.ReadTx) error {
			n := tx.Node(id[0])
			ok = n == nil || SecretMatches(n, secret[0])
			return nil
		})
		if !ok {
			return ctx
		}
		return ca.WithPeer(ctx, ca.Peer{ID: id[0], Role: ca.RoleWorker})
	}
}

// peerServer is a gRPC server that identifies callers with
// peerFromSecret.
func peerServer(store *raftstore.Node) *grpc.Server {
	asPeer := peerFromSecret(store)
	return grpc.NewServer(append(ServerOptions(), grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(asPeer(ctx), req)
	}), grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, &peerStream{ss, asPeer(ss.Context())})
	}))...)
}

type peerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *peerStream) Context() context.Context { return s.ctx }

func withToken(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), TokenMetadataKey, tok)
}

// asNode is a worker call context for node id, whose secret is "s-"+id.
func asNode(id string) context.Context {
	return metadata.AppendToOutgoingContext(withToken(workerToken), NodeIDMetadataKey, id, NodeSecretMetadataKey, "s-"+id)
}

func putNode(t *testing.T, f *fixture, id string) {
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Node{Meta: &minkepb.Meta{Id: id}, SecretHash: HashSecret("s-" + id)})
	})
}

func TestJoinTokens(t *testing.T) {
	f := newFixture(t)
	req := &minkepb.JoinRequest{Addr: "127.0.0.2", Description: &minkepb.NodeDescription{Hostname: "w1"}}
	cases := []struct {
		name  string
		ctx   context.Context
		code  codes.Code
		inMsg string
	}{
		{"no token", context.Background(), codes.Unauthenticated, "no join token"},
		{"wrong token", withToken(otherToken), codes.PermissionDenied, "invalid join token"},
		{"right token", withToken(workerToken), codes.OK, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := f.client.Join(c.ctx, req)
			if status.Code(err) != c.code {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, c.code)
			}
			if err != nil && !strings.Contains(status.Convert(err).Message(), c.inMsg) {
				t.Fatalf("message %q lacks %q", status.Convert(err).Message(), c.inMsg)
			}
			if err == nil && (resp.GetNodeId() == "" || string(resp.GetGossipKey()) != "k" || resp.GetRegistryAddr() == "") {
				t.Fatalf("incomplete answer %v", resp)
			}
		})
	}
	var nodes []*minkepb.Node
	_ = f.store.View(func(tx raftstore.ReadTx) error { nodes = tx.Nodes(); return nil })
	if len(nodes) != 1 {
		t.Fatalf("refused joins stored nodes: %d nodes", len(nodes))
	}
	// A node that joins again keeps its ID, if it proves it owns it.
	first, _ := f.client.Join(withToken(workerToken), req)
	id := first.GetNodeId()
	if _, err := f.client.Join(withToken(workerToken), &minkepb.JoinRequest{NodeId: id, Addr: "127.0.0.3", NodeSecret: "guess"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("rejoin with a wrong secret: %v", err)
	}
	resp, err := f.client.Join(withToken(workerToken), &minkepb.JoinRequest{NodeId: id, Addr: "127.0.0.3", NodeSecret: first.GetNodeSecret()})
	if err != nil || resp.GetNodeId() != id {
		t.Fatalf("rejoin: %v %v", resp, err)
	}
}

func TestNodeIdentity(t *testing.T) {
	f := newFixture(t)
	putNode(t, f, "n1")
	putNode(t, f, "n2")
	putTask(t, f, "t2", "n2", minkepb.TaskState_RUNNING)
	wrongSecret := metadata.AppendToOutgoingContext(withToken(workerToken), NodeIDMetadataKey, "n2", NodeSecretMetadataKey, "s-n1")
	cases := []struct {
		name string
		call func() error
	}{
		{"session with another node's secret", func() error {
			_, err := mustRecvErr(f.client.Session(wrongSecret, &minkepb.SessionRequest{NodeId: "n2"}))
			return err
		}},
		{"session for another node", func() error {
			_, err := mustRecvErr(f.client.Session(asNode("n1"), &minkepb.SessionRequest{NodeId: "n2"}))
			return err
		}},
		{"status for another node's task", func() error {
			_, err := f.client.UpdateTaskStatus(asNode("n1"), &minkepb.UpdateTaskStatusRequest{NodeId: "n2",
				Updates: []*minkepb.TaskStatusUpdate{{TaskId: "t2", Status: &minkepb.TaskStatus{State: minkepb.TaskState_COMPLETE}}}})
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); status.Code(err) != codes.PermissionDenied && status.Code(err) != codes.Unauthenticated {
				t.Fatalf("got %v, want PermissionDenied or Unauthenticated", err)
			}
		})
	}
	_ = f.store.View(func(tx raftstore.ReadTx) error {
		if tx.Task("t2").GetStatus().GetState() != minkepb.TaskState_RUNNING {
			t.Error("a forged report changed the task")
		}
		return nil
	})
}

func putTask(t *testing.T, f *fixture, id, node string, state minkepb.TaskState) {
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Task{Meta: &minkepb.Meta{Id: id}, NodeId: node, DesiredState: minkepb.TaskState_RUNNING,
			Status: &minkepb.TaskStatus{State: state}})
	})
}

func TestStatusMovesForwardOnly(t *testing.T) {
	f := newFixture(t)
	putNode(t, f, "n1")
	putTask(t, f, "t1", "n1", minkepb.TaskState_ASSIGNED)
	putTask(t, f, "t2", "n2", minkepb.TaskState_ASSIGNED)
	putTask(t, f, "t3", "n1", minkepb.TaskState_FAILED)
	steps := []struct {
		name string
		node string
		task string
		to   minkepb.TaskState
		want minkepb.TaskState
	}{
		{"forward", "n1", "t1", minkepb.TaskState_RUNNING, minkepb.TaskState_RUNNING},
		{"backward is dropped", "n1", "t1", minkepb.TaskState_PREPARING, minkepb.TaskState_RUNNING},
		{"another node's task is dropped", "n1", "t2", minkepb.TaskState_RUNNING, minkepb.TaskState_ASSIGNED},
		{"final state is kept", "n1", "t3", minkepb.TaskState_ORPHANED, minkepb.TaskState_FAILED},
		{"unknown task is ignored", "n1", "nope", minkepb.TaskState_RUNNING, 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			_, err := f.client.UpdateTaskStatus(asNode(s.node), &minkepb.UpdateTaskStatusRequest{NodeId: s.node,
				Updates: []*minkepb.TaskStatusUpdate{{TaskId: s.task, Status: &minkepb.TaskStatus{State: s.to, Timestamp: timestamppb.Now()}}}})
			if err != nil {
				t.Fatal(err)
			}
			_ = f.store.View(func(tx raftstore.ReadTx) error {
				if got := tx.Task(s.task).GetStatus().GetState(); got != s.want {
					t.Errorf("state %v, want %v", got, s.want)
				}
				return nil
			})
		})
	}
	// Every call and update counts; only the first step's report was worth
	// a command (the others change nothing and are dropped before Raft).
	m := f.disp.metrics
	if calls, updates, commits := testutil.ToFloat64(m.statusCalls), testutil.ToFloat64(m.statusUpdates), testutil.ToFloat64(m.statusCommits); calls != 5 || updates != 5 || commits != 1 {
		t.Errorf("status calls %v, updates %v, commits %v; want 5, 5, 1", calls, updates, commits)
	}
}

func TestSessionStreamsAssignments(t *testing.T) {
	f := newFixture(t)
	putNode(t, f, "n1")
	ctx, cancel := context.WithTimeout(asNode("n1"), 10*time.Second)
	defer cancel()
	if _, err := mustRecvErr(f.client.Session(asNode("ghost"), &minkepb.SessionRequest{NodeId: "ghost"})); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown node: %v", err)
	}
	stream, err := f.client.Session(ctx, &minkepb.SessionRequest{NodeId: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || len(first.GetTasks()) != 0 {
		t.Fatalf("first message: %v %v", first, err)
	}
	putTask(t, f, "t2", "other", minkepb.TaskState_ASSIGNED) // not ours: no message
	putTask(t, f, "t1", "n1", minkepb.TaskState_ASSIGNED)
	msg, err := stream.Recv()
	if err != nil || len(msg.GetTasks()) != 1 || msg.GetTasks()[0].GetMeta().GetId() != "t1" {
		t.Fatalf("after assignment: %v %v", msg, err)
	}
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		tk := proto.Clone(tx.Task("t1")).(*minkepb.Task)
		tk.DesiredState = minkepb.TaskState_SHUTDOWN
		return tx.Update(tk)
	})
	msg, err = stream.Recv()
	if err != nil || msg.GetTasks()[0].GetDesiredState() != minkepb.TaskState_SHUTDOWN {
		t.Fatalf("after desired change: %v %v", msg, err)
	}
	m := f.disp.metrics
	if n := testutil.ToFloat64(m.sessions); n != 1 {
		t.Errorf("open sessions %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.messages); n != 3 {
		t.Errorf("session messages %v, want 3 (the first, the assignment, the desired state)", n)
	}
	// A build that merges a network-wide change (the node's own READY,
	// committed as its session opened, may land with the assignment)
	// counts as a network wake.
	if n := testutil.ToFloat64(m.nodeWakes) + testutil.ToFloat64(m.networkWakes); n < 2 {
		t.Errorf("wakes %v, want at least 2", n)
	}

	// Logs: a subscription goes down the session and the worker's answer
	// comes back to the subscriber.
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	out, missing := f.disp.Logs.Subscribe(sctx, []*minkepb.Task{{Meta: &minkepb.Meta{Id: "t1"}, NodeId: "n1"},
		{Meta: &minkepb.Meta{Id: "t9"}, NodeId: "gone"}}, &minkepb.LogSubscription{Tail: proto.Int64(5)})
	if len(missing) != 1 || missing[0].GetTaskId() != "t9" || !strings.Contains(string(missing[0].GetData()), "not connected") {
		t.Fatalf("unavailable = %v", missing)
	}
	msg, err = stream.Recv()
	if err != nil || msg.GetLogSubscription() == nil {
		t.Fatalf("no log subscription: %v %v", msg, err)
	}
	if ls := msg.GetLogSubscription(); ls.Tail == nil || ls.GetTail() != 5 {
		t.Errorf("subscription sent to the worker has tail %v, want 5", ls.Tail)
	}
	pub, err := f.client.PublishLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Send(&minkepb.PublishLogsMessage{SubscriptionId: msg.GetLogSubscription().GetId(),
		Messages: []*minkepb.LogMessage{{TaskId: "t1", Data: []byte("hello\n")}}})
	if _, err := pub.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for batch := range out {
		for _, m := range batch {
			got = append(got, string(m.GetData()))
		}
	}
	if len(got) != 1 || got[0] != "hello\n" {
		t.Fatalf("logs = %q", got)
	}
}

func mustRecvErr(s minkepb.Dispatcher_SessionClient, err error) (*minkepb.SessionMessage, error) {
	if err != nil {
		return nil, err
	}
	m, err := s.Recv()
	if err == io.EOF {
		return m, nil
	}
	return m, err
}

// A node that joined keeps working after the join token is rotated: only
// Join needs the token.
func TestJoinedNodesSurviveTokenRotation(t *testing.T) {
	f := newFixture(t)
	resp, err := f.client.Join(withToken(workerToken), &minkepb.JoinRequest{Addr: "127.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Update(t, f.store, func(tx *raftstore.WriteTx) error {
		c := proto.Clone(tx.Cluster()).(*minkepb.Cluster)
		c.JoinTokens.Worker = newToken
		return tx.Update(c)
	})
	if _, err := f.client.Join(withToken(workerToken), &minkepb.JoinRequest{Addr: "127.0.0.3"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("join with the old token: %v", err)
	}
	noToken := metadata.AppendToOutgoingContext(context.Background(),
		NodeIDMetadataKey, resp.GetNodeId(), NodeSecretMetadataKey, resp.GetNodeSecret())
	if _, err := f.client.UpdateTaskStatus(noToken, &minkepb.UpdateTaskStatusRequest{}); err != nil {
		t.Fatalf("joined node after rotation: %v", err)
	}
	// A restarted worker rejoins with its identity and the old token.
	again, err := f.client.Join(withToken(workerToken), &minkepb.JoinRequest{Addr: "127.0.0.2",
		NodeId: resp.GetNodeId(), NodeSecret: resp.GetNodeSecret()})
	if err != nil || again.GetNodeId() != resp.GetNodeId() {
		t.Fatalf("rejoin after rotation: %v %v", again, err)
	}
}
