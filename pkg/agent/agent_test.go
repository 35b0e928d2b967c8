package agent

import (
	"context"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/runtime"
)

func TestContainerSpecFromTask(t *testing.T) {
	task := &minkepb.Task{
		Meta:  &minkepb.Meta{Id: "t1"},
		Image: "127.0.0.1:4245/hello@sha256:abc",
		Spec: &minkepb.TaskSpec{
			Container: &minkepb.ContainerSpec{Image: "hello", Args: []string{"-exit", "3"}, Env: []string{"A=1"},
				Dir: "/w", User: "nobody", StopGracePeriod: durationpb.New(3 * time.Second),
				CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"MKNOD"}},
			Resources: &minkepb.ResourceRequirements{Limits: &minkepb.Resources{MemoryBytes: 64 << 20, NanoCpus: 5e8}},
		},
	}
	want := runtime.ContainerSpec{ID: "t1", Image: "127.0.0.1:4245/hello@sha256:abc", Args: []string{"-exit", "3"},
		Env: []string{"A=1"}, WorkingDir: "/w", User: "nobody", MemoryLimit: 64 << 20, NanoCPUs: 5e8, StopGracePeriod: 3 * time.Second,
		CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"MKNOD"}}
	if got := containerSpec(task); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// An empty command keeps the image's entrypoint (nil, not empty).
	if containerSpec(task).Entrypoint != nil {
		t.Fatal("entrypoint should be nil when the spec has no command")
	}
	task.Spec.Container.Command = []string{"/bin/sh"}
	if got := containerSpec(task).Entrypoint; !reflect.DeepEqual(got, []string{"/bin/sh"}) {
		t.Fatalf("entrypoint %v", got)
	}
}

func TestReporterKeepsNewestState(t *testing.T) {
	r := newReporter(nil, slog.New(slog.DiscardHandler))
	r.report("t1", minkepb.TaskState_PREPARING, "pulling", "", nil)
	r.report("t1", minkepb.TaskState_RUNNING, "running", "", nil)
	r.report("t1", minkepb.TaskState_STARTING, "late", "", nil) // older state arriving late
	if got := r.pending["t1"].GetState(); got != minkepb.TaskState_RUNNING {
		t.Fatalf("pending state %v, want RUNNING", got)
	}
}

// An agent sent to a leader that then dies must be able to go back to the
// other managers it knows (a review of a flaky HA test found it stuck on the
// dead leader).
func TestFailoverRotatesThroughKnownManagers(t *testing.T) {
	a, err := New(Config{DispatcherAddr: "127.0.0.1:1", Token: ca.NewJoinToken(ca.RoleWorker, []byte("test CA")), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.failover("127.0.0.1:1", metadata.Pairs(leaderMetadataKey, "127.0.0.2:1"))
	if a.addr != "127.0.0.2:1" {
		t.Fatalf("after a leader hint: at %s", a.addr)
	}
	// A call that was still running on the first manager's connection
	// fails as it closes: the agent stays with the leader.
	a.failover("127.0.0.1:1", nil)
	if a.addr != "127.0.0.2:1" {
		t.Fatalf("after a late failure on the old connection: at %s, want still at the leader 127.0.0.2:1", a.addr)
	}
	a.failover("127.0.0.2:1", nil) // the leader is gone, and nobody names another
	if a.addr != "127.0.0.1:1" {
		t.Fatalf("after the leader died: at %s, want back at 127.0.0.1:1", a.addr)
	}
}

// refusingDispatcher answers every status report with err.
type refusingDispatcher struct {
	minkepb.DispatcherClient
	err error
}

func (d refusingDispatcher) UpdateTaskStatus(context.Context, *minkepb.UpdateTaskStatusRequest, ...grpc.CallOption) (*minkepb.UpdateTaskStatusResponse, error) {
	return nil, d.err
}

// A report that times out on a busy leader keeps the agent there (moving
// took working sessions off the leader); a refusal moves it. Either way
// the report stays pending for the retry.
func TestReporterFailsOverOnlyWhenRefused(t *testing.T) {
	for _, tc := range []struct {
		err  error
		move bool
	}{
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), false},
		{status.Error(codes.Unavailable, "not the leader; the leader is at 127.0.0.2:1"), true},
	} {
		var moved []string
		r := newReporter(func() (minkepb.DispatcherClient, string) { return refusingDispatcher{err: tc.err}, "127.0.0.1:1" },
			slog.New(slog.DiscardHandler))
		r.failover = func(from string, _ metadata.MD) { moved = append(moved, from) }
		r.report("t1", minkepb.TaskState_RUNNING, "running", "", nil)
		if r.flush(context.Background(), time.Second) {
			t.Fatalf("%v: flush reported success", tc.err)
		}
		if got := len(moved) == 1 && moved[0] == "127.0.0.1:1"; got != tc.move {
			t.Errorf("%v: failovers %v, want a move from 127.0.0.1:1: %v", tc.err, moved, tc.move)
		}
		if r.pending["t1"].GetState() != minkepb.TaskState_RUNNING {
			t.Errorf("%v: the report was not kept for the retry", tc.err)
		}
	}
}
