package attack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/dispatcher"
	"github.com/minke-io/minke/pkg/manager"
	"github.com/minke-io/minke/pkg/raftstore"
)

// logBuffer collects the manager's logs; they are dumped if a test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type target struct {
	m      *manager.Manager
	socket string
	gossip string // gossip address, host:port
	logs   *logBuffer
	// pin is the CA hash of the cluster's join tokens; worker, once
	// joinWorker ran, the joined worker's certificate.
	pin    []byte
	worker *ca.Identity
}

// startManager runs a one-manager cluster on loopback for the test.
func startManager(t *testing.T) *target {
	t.Helper()
	var ports clustertest.Ports
	p := ports.Free(t, "127.0.0.1", 4)
	addr := func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p[i])) }
	logs := &logBuffer{}
	sock := filepath.Join(t.TempDir(), "control.sock")
	m, err := manager.New(manager.Config{
		DataDir: t.TempDir(), ListenAddr: addr(0), RaftAddr: addr(1), GossipAddr: addr(2), RegistryAddr: addr(3),
		ControlSocket: sock, Hostname: "target",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
		if t.Failed() {
			t.Logf("manager logs:\n%s", logs.String())
		}
	})
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("manager stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("manager not ready within 30s")
	}
	var token string
	_ = m.Store().View(func(tx raftstore.ReadTx) error { token = tx.Cluster().GetJoinTokens().GetWorker(); return nil })
	tok, err := ca.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	return &target{m: m, socket: sock, logs: logs, pin: tok.CAHash, gossip: addr(2)}
}

func dial(t *testing.T, target string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// control dials the Control API on the unix socket.
func (tg *target) control(t *testing.T) minkepb.ControlClient {
	return minkepb.NewControlClient(dial(t, "unix://"+tg.socket))
}

// dispatcherConn dials the worker API on --listen-addr: TLS checked
// against the cluster's CA as a joining node does, and with the joined
// worker's certificate once joinWorker ran.
func (tg *target) dispatcherConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	if tg.worker != nil {
		return tg.tlsConn(t, tg.worker.ClientTLS(ca.RoleManager))
	}
	return tg.tlsConn(t, ca.PinnedTLS(tg.pin))
}

// anonConn dials the worker API as a node that has not joined.
func (tg *target) anonConn(t *testing.T) *grpc.ClientConn {
	return tg.tlsConn(t, ca.PinnedTLS(tg.pin))
}

func (tg *target) tlsConn(t *testing.T, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(tg.m.DispatcherAddr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// state is the store's content to compare before and after an attack:
// all of it but the Raft index and the nodes' observed liveness (the
// leader marks the test's process-less worker DOWN after a grace period,
// attack or not).
func (tg *target) state(t *testing.T) *minkepb.Snapshot {
	t.Helper()
	snap, _ := tg.m.Store().Backup()
	snap = proto.Clone(snap).(*minkepb.Snapshot)
	snap.Index = 0
	for _, n := range snap.GetNodes() {
		n.Status = nil
		n.Meta.Version, n.Meta.UpdatedAt = 0, nil
	}
	return snap
}

// stillServes checks that both servers answer ordinary calls.
func (tg *target) stillServes(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tg.control(t).GetCluster(ctx, &minkepb.GetClusterRequest{}); err != nil {
		t.Fatalf("the Control API stopped serving: %v", err)
	}
	// A join with a wrong token is answered (refused), so the dispatcher
	// serves.
	_, err := minkepb.NewDispatcherClient(tg.anonConn(t)).Join(ctx, &minkepb.JoinRequest{Addr: "127.0.0.1"})
	if c := status.Code(err); c != codes.Unauthenticated && c != codes.PermissionDenied {
		t.Fatalf("the dispatcher stopped serving: Join = %v, want a refusal", err)
	}
}

// joinWorker registers a worker node (no process behind it), whose
// identity lets a test reach the streams that need one.
func (tg *target) joinWorker(t *testing.T) *minkepb.JoinResponse {
	t.Helper()
	var token string
	_ = tg.m.Store().View(func(tx raftstore.ReadTx) error { token = tx.Cluster().GetJoinTokens().GetWorker(); return nil })
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), dispatcher.TokenMetadataKey, token), 10*time.Second)
	defer cancel()
	key, csr, err := ca.NewKeyAndCSR("attack-worker")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := minkepb.NewDispatcherClient(tg.dispatcherConn(t)).Join(ctx, &minkepb.JoinRequest{Addr: "127.0.0.1", GossipPort: 9, Csr: csr})
	if err != nil {
		t.Fatalf("joining a worker: %v", err)
	}
	tg.worker = ca.NewIdentity("")
	if err := tg.worker.Set(key, resp.GetCertificate(), resp.GetCaCerts()); err != nil {
		t.Fatal(err)
	}
	return resp
}

func big(n int) string { return strings.Repeat("x", n) }

func TestOversizedMessagesAreRefused(t *testing.T) {
	tg := startManager(t)
	worker := tg.joinWorker(t)
	before := tg.state(t)
	over := manager.MaxRecvMsgSize + 1024
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"control CreateService", func(ctx context.Context) error {
			_, err := tg.control(t).CreateService(ctx, &minkepb.CreateServiceRequest{Spec: &minkepb.ServiceSpec{
				Name: "big", Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "busybox", Env: []string{"A=" + big(over)}}},
				Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 1}},
			}})
			return err
		}},
		{"control UpdateNode labels", func(ctx context.Context) error {
			_, err := tg.control(t).UpdateNode(ctx, &minkepb.UpdateNodeRequest{Node: tg.m.NodeID(), LabelAdd: map[string]string{"k": big(over)}})
			return err
		}},
		{"dispatcher Join", func(ctx context.Context) error {
			_, err := minkepb.NewDispatcherClient(tg.dispatcherConn(t)).Join(ctx, &minkepb.JoinRequest{Addr: "127.0.0.1",
				Description: &minkepb.NodeDescription{Hostname: big(over)}})
			return err
		}},
		{"dispatcher UpdateTaskStatus", func(ctx context.Context) error {
			_, err := minkepb.NewDispatcherClient(tg.dispatcherConn(t)).UpdateTaskStatus(ctx, &minkepb.UpdateTaskStatusRequest{
				NodeId: big(over)})
			return err
		}},
		{"control ServiceLogs stream", func(ctx context.Context) error {
			s, err := tg.control(t).ServiceLogs(ctx, &minkepb.ServiceLogsRequest{Service: big(over)})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
		{"dispatcher PublishLogs stream of a joined worker", func(ctx context.Context) error {
			_ = worker // identified by its certificate (tg.dispatcherConn)
			s, err := minkepb.NewDispatcherClient(tg.dispatcherConn(t)).PublishLogs(ctx)
			if err != nil {
				return err
			}
			_ = s.Send(&minkepb.PublishLogsMessage{Messages: []*minkepb.LogMessage{{Data: []byte(big(over))}}})
			_, err = s.CloseAndRecv()
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := tt.call(ctx)
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "larger than max") {
				t.Fatalf("err = %v, want ResourceExhausted naming the limit", err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(manager.MaxRecvMsgSize)) {
				t.Errorf("error %q does not name the limit %d", err, manager.MaxRecvMsgSize)
			}
			tg.stillServes(t)
		})
	}
	if after := tg.state(t); !proto.Equal(before, after) {
		t.Fatalf("the store changed:\nbefore %v\nafter  %v", before, after)
	}
}

// rawCodec sends bytes as they are, to put undecodable protobuf on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// h2Preface is what every HTTP/2 client sends first.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2Frame builds an HTTP/2 frame header with payload.
func h2Frame(typ, flags byte, stream uint32, payload []byte) []byte {
	f := make([]byte, 9, 9+len(payload))
	f[0], f[1], f[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	f[3], f[4] = typ, flags
	binary.BigEndian.PutUint32(f[5:], stream&0x7fffffff)
	return append(f, payload...)
}

// sendRaw writes b to addr and reads until the server closes the
// connection or 5 s pass; it returns what the server answered.
func sendRaw(t *testing.T, network, addr string, b []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write(b)
	out, _ := io.ReadAll(io.LimitReader(c, 1<<16))
	return out
}

func TestMalformedBytesOnGRPCPorts(t *testing.T) {
	tg := startManager(t)
	before := tg.state(t)
	raw := []struct {
		name  string
		bytes []byte
	}{
		{"random bytes", randomBytes(4096)},
		{"http/1.1 request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"preface then garbage", append([]byte(h2Preface), randomBytes(1024)...)},
		{"preface then a huge frame", append([]byte(h2Preface), h2Frame(0x0, 0, 1, randomBytes(16385))...)},
		{"preface, settings, headers with garbage hpack", append(append([]byte(h2Preface), h2Frame(0x4, 0, 0, nil)...),
			h2Frame(0x1, 0x4|0x1, 1, randomBytes(200))...)},
		{"data on stream 0", append(append([]byte(h2Preface), h2Frame(0x4, 0, 0, nil)...), h2Frame(0x0, 0, 0, randomBytes(10))...)},
	}
	endpoints := []struct{ name, network, addr string }{
		{"dispatcher", "tcp", tg.m.DispatcherAddr()},
		{"control socket", "unix", tg.socket},
	}
	for _, ep := range endpoints {
		for _, r := range raw {
			t.Run(ep.name+"/"+r.name, func(t *testing.T) {
				out := sendRaw(t, ep.network, ep.addr, r.bytes)
				// Whatever the server answers, it is not a gRPC response.
				if bytes.Contains(out, []byte("grpc-status: 0")) {
					t.Fatalf("server answered garbage with success: %q", out)
				}
				tg.stillServes(t)
			})
		}
	}

	// Well-formed gRPC carrying bytes that are not the request message.
	garbage := [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0xff}, // a varint that never ends
		{0x0a, 0x7f, 0x01},             // field 1, length 127, 1 byte present
		{0x0b},                         // start group, never ended
		randomBytes(512),
	}
	for _, m := range []struct{ name, method, target string }{
		{"control CreateService", "/minke.v1.Control/CreateService", "unix://" + tg.socket},
		{"control UpdateNode", "/minke.v1.Control/UpdateNode", "unix://" + tg.socket},
		{"dispatcher Join", "/minke.v1.Dispatcher/Join", tg.m.DispatcherAddr()},
	} {
		conn := tg.dispatcherConn(t)
		if strings.HasPrefix(m.target, "unix://") {
			conn = dial(t, m.target)
		}
		for i, g := range garbage {
			t.Run(fmt.Sprintf("%s/garbage %d", m.name, i), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var reply []byte
				err := conn.Invoke(ctx, m.method, g, &reply, grpc.ForceCodec(rawCodec{}))
				if err == nil {
					t.Fatalf("undecodable request accepted")
				}
				// Random bytes can happen to decode (protobuf is lenient);
				// then the request is refused as invalid instead.
				switch status.Code(err) {
				case codes.Internal:
					if !strings.Contains(err.Error(), "unmarshal") {
						t.Errorf("err = %v, want it to say the request could not be unmarshalled", err)
					}
				case codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied, codes.NotFound:
				default:
					t.Errorf("err = %v, want Internal (unmarshal) or a refusal", err)
				}
			})
		}
	}
	tg.stillServes(t)
	if after := tg.state(t); !proto.Equal(before, after) {
		t.Fatalf("the store changed:\nbefore %v\nafter  %v", before, after)
	}
}
