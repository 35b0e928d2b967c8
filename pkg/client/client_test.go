package client

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		in, target, tcpHost, wantErr string
	}{
		{"", "unix:///run/minke/manager.sock", "", ""},
		{"unix:///tmp/m.sock", "unix:///tmp/m.sock", "", ""},
		{"/tmp/m.sock", "unix:///tmp/m.sock", "", ""},
		{"m.sock", "unix:m.sock", "", ""},
		{"tcp://127.0.0.2:4242", "passthrough:///127.0.0.2:4242", "127.0.0.2", ""},
		{"tcp://[::1]:4242", "passthrough:///[::1]:4242", "::1", ""},
		{"tcp://host", "", "", `invalid host "tcp://host": want tcp://HOST:PORT`},
		{"tcp://:4242", "", "", "want tcp://HOST:PORT"},
		{"unix://", "", "", "want unix:///PATH"},
		{"http://x:1", "", "", "want unix:///PATH, a socket path, or tcp://HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ep, err := parseHost(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidHost) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalidHost containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || ep.target != tt.target || ep.tcpHost != tt.tcpHost {
				t.Errorf("parseHost(%q) = %+v, %v; want %q %q", tt.in, ep, err, tt.target, tt.tcpHost)
			}
		})
	}
}

func TestRegistryHost(t *testing.T) {
	tests := []struct{ reg, dial, want string }{
		{"10.0.0.5:4245", "", "10.0.0.5:4245"},
		{"0.0.0.0:4245", "", "127.0.0.1:4245"},
		{"[::]:4245", "", "127.0.0.1:4245"},
		{":4245", "", "127.0.0.1:4245"},
		{"0.0.0.0:4245", "10.0.0.5", "10.0.0.5:4245"},
		{"127.0.0.1:4245", "10.0.0.5", "10.0.0.5:4245"},
		{"127.0.0.2:4245", "127.0.0.1", "127.0.0.2:4245"},
		{"127.0.0.2:4245", "localhost", "127.0.0.2:4245"},
		{"registry.local:4245", "10.0.0.5", "registry.local:4245"},
		{"garbage", "", "garbage"},
	}
	for _, tt := range tests {
		if got := RegistryHost(tt.reg, tt.dial); got != tt.want {
			t.Errorf("RegistryHost(%q, %q) = %q, want %q", tt.reg, tt.dial, got, tt.want)
		}
	}
}

func TestChooseImage(t *testing.T) {
	tests := []struct {
		name     string
		names    []string
		nameTag  string
		wantIdx  int
		wantName string
		wantErr  string
	}{
		{"recorded name", []string{"busybox:latest"}, "", 0, "busybox:latest", ""},
		{"rename single", []string{"busybox:latest"}, "bb:1", 0, "bb:1", ""},
		{"name unnamed single", []string{""}, "bb:1", 0, "bb:1", ""},
		{"unnamed needs a name", []string{""}, "", 0, "", "records no image name"},
		{"pick from several", []string{"a:1", "b:2"}, "b:2", 1, "b:2", ""},
		{"several need a name", []string{"a:1", "b:2"}, "", 0, "", "holds 2 images (a:1, b:2): name the one to push"},
		{"several, unknown name", []string{"a:1", ""}, "c:3", 0, "", `none is named "c:3"`},
		{"empty tarball", nil, "x", 0, "", "holds no image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i, name, err := ChooseImage("img.tar", tt.names, tt.nameTag)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || i != tt.wantIdx || name != tt.wantName {
				t.Errorf("got %d %q %v; want %d %q", i, name, err, tt.wantIdx, tt.wantName)
			}
		})
	}
}

// fakeControl is an in-memory Control server for one service.
type fakeControl struct {
	minkepb.UnimplementedControlServer

	mu           sync.Mutex
	svc          *minkepb.Service
	staleWrites  int               // UpdateService refusals still to hand out
	polls        [][]*minkepb.Task // ListTasks answers in order; the last repeats
	updates      int
	logs         []*minkepb.LogMessage
	registryAddr string
	root         *ca.RootCA      // signs client certificates, if set
	issued       []time.Duration // lifetimes asked of IssueClientCertificate
}

func (f *fakeControl) GetService(_ context.Context, req *minkepb.GetServiceRequest) (*minkepb.GetServiceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.GetService() != f.svc.GetMeta().GetId() && req.GetService() != f.svc.GetSpec().GetName() {
		return nil, status.Errorf(codes.NotFound, "service %q not found", req.GetService())
	}
	return &minkepb.GetServiceResponse{Service: f.svc}, nil
}

func (f *fakeControl) UpdateService(_ context.Context, req *minkepb.UpdateServiceRequest) (*minkepb.UpdateServiceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates++
	if f.staleWrites > 0 {
		f.staleWrites--
		f.svc.Meta.Version++ // someone else wrote
		return nil, status.Error(codes.FailedPrecondition, "stale version")
	}
	if req.GetServiceVersion() != f.svc.GetMeta().GetVersion() {
		return nil, status.Error(codes.FailedPrecondition, "stale version")
	}
	f.svc = &minkepb.Service{
		Meta: &minkepb.Meta{Id: f.svc.Meta.Id, Version: f.svc.Meta.Version + 1, UpdatedAt: f.svc.Meta.UpdatedAt},
		Spec: req.GetSpec(),
	}
	return &minkepb.UpdateServiceResponse{Service: f.svc}, nil
}

func (f *fakeControl) ListTasks(context.Context, *minkepb.ListTasksRequest) (*minkepb.ListTasksResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tasks := f.polls[0]
	if len(f.polls) > 1 {
		f.polls = f.polls[1:]
	}
	return &minkepb.ListTasksResponse{Tasks: tasks}, nil
}

func (f *fakeControl) ServiceLogs(_ *minkepb.ServiceLogsRequest, stream grpc.ServerStreamingServer[minkepb.ServiceLogsResponse]) error {
	for _, m := range f.logs {
		if err := stream.Send(&minkepb.ServiceLogsResponse{Messages: []*minkepb.LogMessage{m}}); err != nil {
			return err
		}
	}
	return nil
}

// serve starts f on a unix socket and returns a client dialled to it by a
// bare path.
func serve(t *testing.T, f *fakeControl) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "m.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	minkepb.RegisterControlServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	c, err := Dial(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Stop()
		<-done
	})
	return c
}

func webService(replicas uint64) *minkepb.Service {
	return &minkepb.Service{
		Meta: &minkepb.Meta{Id: "svc1", Version: 7, UpdatedAt: timestamppb.New(t0)},
		Spec: &minkepb.ServiceSpec{
			Name: "web",
			Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: replicas}},
		},
	}
}

func TestScaleServiceRetriesStaleVersion(t *testing.T) {
	f := &fakeControl{svc: webService(1), staleWrites: 2}
	c := serve(t, f)
	svc, err := c.ScaleService(context.Background(), "web", 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.GetSpec().GetReplicated().GetReplicas(); got != 4 {
		t.Errorf("replicas = %d, want 4", got)
	}
	if f.updates != 3 {
		t.Errorf("UpdateService called %d times, want 3 (two stale, one good)", f.updates)
	}
	if svc.GetSpec().GetName() != "web" {
		t.Errorf("scaling lost the rest of the spec: %v", svc.GetSpec())
	}
}

func TestScaleServiceGivesUp(t *testing.T) {
	f := &fakeControl{svc: webService(1), staleWrites: 100}
	c := serve(t, f)
	_, err := c.ScaleService(context.Background(), "web", 4)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("err = %v, want FailedPrecondition after %d attempts", err, scaleAttempts)
	}
	if f.updates != scaleAttempts {
		t.Errorf("UpdateService called %d times, want %d", f.updates, scaleAttempts)
	}
}

func TestScaleServiceNotFoundIsGRPCError(t *testing.T) {
	c := serve(t, &fakeControl{svc: webService(1)})
	_, err := c.ScaleService(context.Background(), "nope", 4)
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != `service "nope" not found` {
		t.Fatalf("err = %v, want the server's NotFound", err)
	}
}

func TestWaitForService(t *testing.T) {
	R := minkepb.TaskState_RUNNING
	after := t0.Add(time.Second)
	t.Run("converges", func(t *testing.T) {
		f := &fakeControl{svc: webService(2), polls: [][]*minkepb.Task{
			{},
			{tk("a", 1, R, minkepb.TaskState_PREPARING, after, ""), tk("b", 2, R, minkepb.TaskState_PENDING, after, "")},
			{tk("a", 1, R, R, after, ""), tk("b", 2, R, minkepb.TaskState_STARTING, after, "")},
			{tk("a", 1, R, R, after, ""), tk("b", 2, R, R, after, "")},
		}}
		c := serve(t, f)
		var seen []uint64
		err := c.WaitForService(context.Background(), "svc1", func(running, desired uint64, tasks []*minkepb.Task) {
			if desired != 2 {
				t.Errorf("desired = %d, want 2", desired)
			}
			seen = append(seen, running)
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []uint64{0, 0, 1, 2}; len(seen) != len(want) || seen[2] != 1 || seen[3] != 2 {
			t.Errorf("progress saw %v, want %v", seen, want)
		}
	})
	t.Run("task fails", func(t *testing.T) {
		f := &fakeControl{svc: webService(1), polls: [][]*minkepb.Task{
			{tk("a", 1, R, minkepb.TaskState_FAILED, after, "starting container: exec: \"nope\": not found")},
		}}
		c := serve(t, f)
		err := c.WaitForService(context.Background(), "svc1", nil)
		var tf *TaskFailedError
		if !errors.As(err, &tf) || !strings.Contains(err.Error(), `exec: "nope": not found`) {
			t.Fatalf("err = %v, want a TaskFailedError with the task's error", err)
		}
	})
	t.Run("context ends the wait", func(t *testing.T) {
		f := &fakeControl{svc: webService(1), polls: [][]*minkepb.Task{{}}}
		c := serve(t, f)
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		defer cancel()
		err := c.WaitForService(ctx, "svc1", nil)
		if !errors.Is(err, context.DeadlineExceeded) && status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("err = %v, want the context's deadline", err)
		}
	})
}

func TestServiceLogs(t *testing.T) {
	f := &fakeControl{svc: webService(1), logs: []*minkepb.LogMessage{
		{TaskId: "a", Data: []byte("one\n")}, {TaskId: "b", Data: []byte("two\n")},
	}}
	c := serve(t, f)
	var got []string
	err := c.ServiceLogs(context.Background(), "web", false, func(m *minkepb.LogMessage) error {
		got = append(got, m.GetTaskId()+":"+string(m.GetData()))
		return nil
	})
	if err != nil || strings.Join(got, "") != "a:one\nb:two\n" {
		t.Errorf("got %q, %v", got, err)
	}
	stop := errors.New("stop")
	err = c.ServiceLogs(context.Background(), "web", false, func(*minkepb.LogMessage) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("err = %v, want fn's error", err)
	}
}
