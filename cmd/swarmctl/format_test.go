package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

var now = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func ago(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-d)) }

func service(id, name, image string, replicas uint64) *minkepb.Service {
	return &minkepb.Service{
		Meta: &minkepb.Meta{Id: id},
		Spec: &minkepb.ServiceSpec{
			Name: name,
			Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: image}},
			Mode: replicated(replicas),
		},
	}
}

func task(id, svc string, slot uint64, node string, desired, state minkepb.TaskState, age time.Duration, errText string) *minkepb.Task {
	return &minkepb.Task{
		Meta:         &minkepb.Meta{Id: id, CreatedAt: ago(age)},
		ServiceName:  svc,
		Slot:         slot,
		NodeId:       node,
		Spec:         &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "busybox:latest"}},
		DesiredState: desired,
		Status:       &minkepb.TaskStatus{State: state, Timestamp: ago(age), Err: errText},
	}
}

func TestWriteServices(t *testing.T) {
	services := []*minkepb.Service{
		service("zzzz0123456789abcdef", "web", "nginx:1.27", 3),
		service("aaaa0123456789abcdef", "api", "registry.example/api:1", 2),
		service("bbbb0123456789abcdef", "batch", "busybox", 1),
	}
	counts := map[string]*minkepb.ReplicaCounts{
		"zzzz0123456789abcdef": {Running: 2, Desired: 3},
		"aaaa0123456789abcdef": {Running: 2, Desired: 2},
	}
	var b bytes.Buffer
	if err := writeServices(&b, services, counts); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID             NAME    MODE         REPLICAS   IMAGE\n" +
		"aaaa01234567   api     replicated   2/2        registry.example/api:1\n" +
		"bbbb01234567   batch   replicated   0/1        busybox\n" +
		"zzzz01234567   web     replicated   2/3        nginx:1.27\n"
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteTasks(t *testing.T) {
	R, S := minkepb.TaskState_RUNNING, minkepb.TaskState_SHUTDOWN
	tasks := []*minkepb.Task{
		task("t3aaaaaaaaaaaaaaaa", "web", 2, "n2xxxxxxxxxxxxxxxx", R, minkepb.TaskState_PREPARING, 3*time.Second, ""),
		task("t1aaaaaaaaaaaaaaaa", "web", 1, "n1xxxxxxxxxxxxxxxx", R, R, 90*time.Second, ""),
		task("t2aaaaaaaaaaaaaaaa", "web", 2, "n1xxxxxxxxxxxxxxxx", S, minkepb.TaskState_FAILED, 2*time.Hour, "task: non-zero exit (1)"),
		task("t4aaaaaaaaaaaaaaaa", "web", 3, "unknown-node-id-123", R, minkepb.TaskState_PENDING, 0, ""),
	}
	hosts := map[string]string{"n1xxxxxxxxxxxxxxxx": "node-1", "n2xxxxxxxxxxxxxxxx": "node-2"}
	var b bytes.Buffer
	if err := writeTasks(&b, tasks, hosts, now); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID             NAME        IMAGE            NODE           DESIRED STATE   CURRENT STATE                    ERROR\n" +
		"t1aaaaaaaaaa   web.1       busybox:latest   node-1         Running         Running About a minute ago       \n" +
		"t3aaaaaaaaaa   web.2       busybox:latest   node-2         Running         Preparing 3 seconds ago          \n" +
		"t2aaaaaaaaaa    \\_ web.2   busybox:latest   node-1         Shutdown        Failed 2 hours ago               \"task: non-zero exit (1)\"\n" +
		"t4aaaaaaaaaa   web.3       busybox:latest   unknown-node   Running         Pending Less than a second ago   \n"
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteNodes(t *testing.T) {
	nodes := []*minkepb.Node{
		{
			Meta:        &minkepb.Meta{Id: "n2xxxxxxxxxxxxxxxx"},
			Spec:        &minkepb.NodeSpec{Availability: minkepb.NodeSpec_DRAIN},
			Description: &minkepb.NodeDescription{Hostname: "worker-1"},
			Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_DOWN, Addr: "127.0.0.3"},
		},
		{
			Meta:          &minkepb.Meta{Id: "n1xxxxxxxxxxxxxxxx"},
			Description:   &minkepb.NodeDescription{Hostname: "manager-1"},
			Status:        &minkepb.NodeStatus{State: minkepb.NodeStatus_READY, Addr: "127.0.0.2"},
			Role:          minkepb.NodeRole_MANAGER,
			ManagerStatus: &minkepb.ManagerStatus{Leader: true, Reachability: minkepb.ManagerStatus_REACHABLE},
		},
		{
			Meta:          &minkepb.Meta{Id: "n3xxxxxxxxxxxxxxxx"},
			Description:   &minkepb.NodeDescription{Hostname: "manager-2"},
			Status:        &minkepb.NodeStatus{State: minkepb.NodeStatus_DOWN, Addr: "127.0.0.4"},
			Role:          minkepb.NodeRole_MANAGER,
			ManagerStatus: &minkepb.ManagerStatus{Reachability: minkepb.ManagerStatus_UNREACHABLE},
		},
	}
	var b bytes.Buffer
	if err := writeNodes(&b, nodes); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID             HOSTNAME    STATUS   AVAILABILITY   MANAGER STATUS   ADDR\n" +
		"n1xxxxxxxxxx   manager-1   Ready    Active         Leader           127.0.0.2\n" +
		"n3xxxxxxxxxx   manager-2   Down     Active         Unreachable      127.0.0.4\n" +
		"n2xxxxxxxxxx   worker-1    Down     Drain                           127.0.0.3\n"
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteJSONArray(t *testing.T) {
	var b bytes.Buffer
	services := []*minkepb.Service{service("id1", "web", "nginx", 2)}
	if err := writeJSONArray(&b, services); err != nil {
		t.Fatal(err)
	}
	want := `[
  {
    "meta": {
      "id": "id1"
    },
    "spec": {
      "name": "web",
      "task": {
        "container": {
          "image": "nginx"
        }
      },
      "replicated": {
        "replicas": "2"
      }
    }
  }
]
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	if err := writeJSONArray(&b, []*minkepb.Node{}); err != nil {
		t.Fatal(err)
	}
	var arr []any
	if err := json.Unmarshal(b.Bytes(), &arr); err != nil || len(arr) != 0 {
		t.Errorf("empty list printed %q, want an empty JSON array", b.String())
	}
}

func TestWriteServiceDetail(t *testing.T) {
	svc := service("aaaa0123456789abcdef", "api", "registry.example/api:1", 2)
	c := svc.Spec.Task.Container
	c.Args = []string{"serve", "--port", "80"}
	c.Env = []string{"A=1"}
	svc.Spec.Task.Resources = &minkepb.ResourceRequirements{Limits: &minkepb.Resources{NanoCpus: 1_500_000_000, MemoryBytes: 64 << 20}}
	var b bytes.Buffer
	if err := writeServiceDetail(&b, svc, &minkepb.ReplicaCounts{Running: 1, Desired: 2}); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID:         aaaa0123456789abcdef\n" +
		"Name:       api\n" +
		"Mode:       replicated\n" +
		"Replicas:   1/2 running\n" +
		"Image:      registry.example/api:1\n" +
		"Args:       serve --port 80\n" +
		"Env:        A=1\n" +
		"Limits:     cpu=1.5 memory=64MiB\n" +
		"Version:    0\n"
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestHumanDuration(t *testing.T) {
	tests := map[time.Duration]string{
		0:                "Less than a second",
		time.Second:      "1 second",
		45 * time.Second: "45 seconds",
		61 * time.Second: "About a minute",
		5 * time.Minute:  "5 minutes",
		time.Hour:        "About an hour",
		5 * time.Hour:    "5 hours",
		72 * time.Hour:   "3 days",
	}
	for d, want := range tests {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	R := minkepb.TaskState_RUNNING
	tasks := []*minkepb.Task{
		task("a", "web", 1, "", R, R, 0, ""),
		task("b", "web", 2, "", R, minkepb.TaskState_PREPARING, 0, ""),
		task("c", "web", 3, "", R, R, 0, ""),
	}
	if got, want := progressLine("web", 2, 3, tasks), "web: 2/3 running (2 running, 1 preparing)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := progressLine("web", 0, 3, nil), "web: 0/3 running"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLogPrinter(t *testing.T) {
	var b bytes.Buffer
	p := newLogPrinter(&b, "web", map[string]string{"n1": "node-1"})
	msgs := []*minkepb.LogMessage{
		{TaskId: "task1aaaaaaaaaaaaa", NodeId: "n1", Slot: 1, Data: []byte("one\ntwo\nthr")},
		{TaskId: "task2bbbbbbbbbbbbb", NodeId: "n2-unknown-node-id", Slot: 2, Data: []byte("other\n")},
		{TaskId: "task1aaaaaaaaaaaaa", NodeId: "n1", Slot: 1, Data: []byte("ee\nfour")},
		{TaskId: "task2bbbbbbbbbbbbb", NodeId: "n2-unknown-node-id", Slot: 2, Data: []byte("\n\n")},
	}
	for _, m := range msgs {
		if err := p.write(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"web.1.task1aaaaaaa@node-1    | one\n" +
		"web.1.task1aaaaaaa@node-1    | two\n" +
		"web.2.task2bbbbbbb@n2-unknown-n    | other\n" +
		"web.1.task1aaaaaaa@node-1    | three\n" +
		"web.2.task2bbbbbbb@n2-unknown-n    | \n" +
		"web.2.task2bbbbbbb@n2-unknown-n    | \n" +
		"web.1.task1aaaaaaa@node-1    | four\n"
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestCommandsAgainstFake(t *testing.T) {
	f := &fakeAPI{
		services: []*minkepb.Service{service("aaaa0123456789abcdef", "api", "img", 2)},
		tasks:    []*minkepb.Task{task("t1aaaaaaaaaaaaaaaa", "api", 1, "n1", minkepb.TaskState_RUNNING, minkepb.TaskState_RUNNING, 0, "")},
		cluster:  &minkepb.Cluster{JoinTokens: &minkepb.JoinTokens{Worker: "SWMTKN-w", Manager: "SWMTKN-m"}},
		logs:     []*minkepb.LogMessage{{TaskId: "t1aaaaaaaaaaaaaaaa", NodeId: "n1", Slot: 1, Data: []byte("hi\n")}},
		nodes:    []*minkepb.Node{{Meta: &minkepb.Meta{Id: "n1"}, Description: &minkepb.NodeDescription{Hostname: "h1"}}},
	}
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{[]string{"cluster", "join-token", "worker"}, 0, "SWMTKN-w\n", ""},
		{[]string{"cluster", "join-token", "manager"}, 0, "SWMTKN-m\n", ""},
		{[]string{"service", "logs", "api"}, 0, "api.1.t1aaaaaaaaaa@h1    | hi\n", ""},
		{[]string{"service", "scale", "api=5", "-d"}, 0, "api scaled to 5\n", ""},
		{[]string{"service", "scale", "api=5"}, 0, "api scaled to 5\n", "api: 0/2 running\napi: 2/2 running (1 running)\napi: converged\n"},
		{[]string{"service", "rm", "api", "web"}, 0, "api\nweb\n", ""},
		{[]string{"service", "create", "busybox"}, 0, "svc0123456789abcdef\n", ": 0/2 running\n: 2/2 running (1 running)\n: converged\n"},
		{[]string{"service", "ps", "api", "--format", "json"}, 0, "[\n  {\n    \"meta\"", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr, _ := runFake(t, f, tt.args...)
			if code != tt.wantCode || !strings.HasPrefix(stdout, tt.wantStdout) || stderr != tt.wantStderr {
				t.Errorf("got exit %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout, stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}
