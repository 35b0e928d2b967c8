package agent

import (
	"google.golang.org/grpc/metadata"
	"log/slog"
	"reflect"
	"testing"
	"time"

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
