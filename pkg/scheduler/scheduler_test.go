package scheduler

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestSchedule(t *testing.T) {
	tests := []struct {
		name     string
		nodes    []NodeInfo
		pending  []*minkepb.Task
		want     []Assignment
		unplaced map[string]string
	}{
		{
			name:     "no nodes",
			pending:  []*minkepb.Task{task("t1", "s", 1, 0, 0)},
			unplaced: map[string]string{"t1": "no suitable node (0 nodes in the cluster)"},
		},
		{
			name:    "no tasks",
			nodes:   []NodeInfo{{Node: node("n1", cpu, gib)}},
			pending: nil,
		},
		{
			name: "batch of one service spreads one per node",
			nodes: []NodeInfo{
				{Node: node("n3", 4*cpu, 4*gib)},
				{Node: node("n1", 4*cpu, 4*gib)},
				{Node: node("n2", 4*cpu, 4*gib)},
			},
			pending: []*minkepb.Task{
				task("t3", "s", 3, cpu, gib),
				task("t1", "s", 1, cpu, gib),
				task("t2", "s", 2, cpu, gib),
			},
			want: []Assignment{{"t1", "n1"}, {"t2", "n2"}, {"t3", "n3"}},
		},
		{
			name: "fewest tasks of the same service wins over fewest tasks",
			nodes: []NodeInfo{
				{Node: node("n1", 0, 0), Tasks: []*minkepb.Task{running(task("a1", "a", 1, 0, 0))}},
				{Node: node("n2", 0, 0), Tasks: []*minkepb.Task{
					running(task("b1", "b", 1, 0, 0)), running(task("b2", "b", 2, 0, 0)),
				}},
			},
			pending: []*minkepb.Task{task("a2", "a", 2, 0, 0)},
			want:    []Assignment{{"a2", "n2"}},
		},
		{
			name: "same-service tie broken by fewest tasks in total",
			nodes: []NodeInfo{
				{Node: node("n1", 0, 0), Tasks: []*minkepb.Task{running(task("b1", "b", 1, 0, 0))}},
				{Node: node("n2", 0, 0)},
			},
			pending: []*minkepb.Task{task("a1", "a", 1, 0, 0)},
			want:    []Assignment{{"a1", "n2"}},
		},
		{
			name: "full tie broken by node ID",
			nodes: []NodeInfo{
				{Node: node("nb", 0, 0)},
				{Node: node("na", 0, 0)},
			},
			pending: []*minkepb.Task{task("a1", "a", 1, 0, 0)},
			want:    []Assignment{{"a1", "na"}},
		},
		{
			name: "terminal tasks hold no resources and do not count",
			nodes: []NodeInfo{
				{Node: node("n1", cpu, gib), Tasks: []*minkepb.Task{
					withState(task("old", "a", 1, cpu, gib), minkepb.TaskState_SHUTDOWN, minkepb.TaskState_RUNNING),
					withState(task("dead", "a", 1, cpu, gib), minkepb.TaskState_RUNNING, minkepb.TaskState_FAILED),
				}},
				{Node: node("n2", cpu, gib)},
			},
			pending: []*minkepb.Task{task("a1", "a", 1, cpu, gib)},
			want:    []Assignment{{"a1", "n1"}},
		},
		{
			name: "not ready, paused and drained nodes are refused",
			nodes: []NodeInfo{
				{Node: node("n1", cpu, gib, down)},
				{Node: node("n2", cpu, gib, paused)},
				{Node: node("n3", cpu, gib, drained)},
				{Node: node("n4", cpu, gib)},
			},
			pending: []*minkepb.Task{task("a1", "a", 1, 0, 0), task("a2", "a", 2, 0, 0)},
			want:    []Assignment{{"a1", "n4"}, {"a2", "n4"}},
		},
		{
			name: "reservations accumulate within a batch",
			nodes: []NodeInfo{
				{Node: node("n1", 4*cpu, gib)},
			},
			pending: []*minkepb.Task{
				task("a1", "a", 1, 0, 512*mib),
				task("a2", "a", 2, 0, 512*mib),
				task("a3", "a", 3, 0, 512*mib),
			},
			want: []Assignment{{"a1", "n1"}, {"a2", "n1"}},
			unplaced: map[string]string{
				"a3": "no suitable node (1 node: 1 insufficient memory: 512MiB reserved by task, at most 0B free)",
			},
		},
		{
			name: "reservations of active tasks are subtracted",
			nodes: []NodeInfo{
				{Node: node("n1", 2*cpu, 2*gib), Tasks: []*minkepb.Task{running(task("x", "x", 1, 1500*cpu/1000, 0))}},
				{Node: node("n2", 2*cpu, 2*gib), Tasks: []*minkepb.Task{
					running(task("y1", "y", 1, 0, 0)), running(task("y2", "y", 2, 0, 0)),
				}},
			},
			pending: []*minkepb.Task{task("a1", "a", 1, cpu, 0)},
			want:    []Assignment{{"a1", "n2"}},
		},
		{
			name: "explanation counts every filter",
			nodes: []NodeInfo{
				{Node: node("n1", 8*cpu, 8*gib, down)},
				{Node: node("n2", 8*cpu, 512*mib)},
				{Node: node("n3", 8*cpu, gib), Tasks: []*minkepb.Task{running(task("x", "x", 1, 0, 768*mib))}},
			},
			pending: []*minkepb.Task{task("a1", "a", 1, cpu, gib)},
			unplaced: map[string]string{
				"a1": "no suitable node (3 nodes: 1 not ready; 2 insufficient memory: 1GiB reserved by task, at most 512MiB free)",
			},
		},
		{
			name: "explanation for availability and cpu",
			nodes: []NodeInfo{
				{Node: node("n1", 8*cpu, 8*gib, paused)},
				{Node: node("n2", 8*cpu, 8*gib, drained)},
				{Node: node("n3", 8*cpu, 8*gib, drained)},
				{Node: node("n4", cpu/2, 8*gib)},
			},
			pending: []*minkepb.Task{task("a1", "a", 1, 1500*cpu/1000, 0)},
			unplaced: map[string]string{
				"a1": "no suitable node (4 nodes: 1 paused, 2 drained; 1 insufficient cpu: 1.5 CPUs reserved by task, at most 0.5 free)",
			},
		},
		{
			name: "a node without the worker role gets no tasks",
			nodes: []NodeInfo{
				{Node: &minkepb.Node{
					Meta:        &minkepb.Meta{Id: "m1"},
					Description: &minkepb.NodeDescription{Resources: &minkepb.Resources{NanoCpus: 4e9, MemoryBytes: 1 << 30}},
					Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_READY},
				}},
			},
			pending:  []*minkepb.Task{task("a1", "a", 1, 0, 0)},
			want:     []Assignment{},
			unplaced: map[string]string{"a1": "no suitable node (1 node: 1 without the worker role)"},
		},
		{
			name: "node without reported resources takes only tasks without reservations",
			nodes: []NodeInfo{
				{Node: &minkepb.Node{
					Meta:        &minkepb.Meta{Id: "n1"},
					Description: &minkepb.NodeDescription{Worker: true},
					Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_READY},
				}},
			},
			pending: []*minkepb.Task{task("a1", "a", 1, 0, 0), task("b1", "b", 1, 0, mib)},
			want:    []Assignment{{"a1", "n1"}},
			unplaced: map[string]string{
				"b1": "no suitable node (1 node: 1 insufficient memory: 1MiB reserved by task, at most 0B free)",
			},
		},
		{
			name:  "tasks are taken by service, then slot, then ID",
			nodes: []NodeInfo{{Node: node("n1", 2*cpu, gib)}},
			pending: []*minkepb.Task{
				task("z", "b", 1, cpu, 0),
				task("y", "a", 2, cpu, 0),
				task("x", "a", 2, cpu, 0),
				task("w", "a", 10, cpu, 0),
			},
			want: []Assignment{{"x", "n1"}, {"y", "n1"}},
			unplaced: map[string]string{
				"w": "no suitable node (1 node: 1 insufficient cpu: 1 CPU reserved by task, at most 0 free)",
				"z": "no suitable node (1 node: 1 insufficient cpu: 1 CPU reserved by task, at most 0 free)",
			},
		},
		{
			name:    "nil nodes and tasks are ignored",
			nodes:   []NodeInfo{{Node: nil}, {Node: node("n1", cpu, gib), Tasks: []*minkepb.Task{nil}}},
			pending: []*minkepb.Task{nil, task("a1", "a", 1, cpu, gib)},
			want:    []Assignment{{"a1", "n1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Schedule(tt.nodes, tt.pending)
			want := tt.want
			if want == nil {
				want = []Assignment{}
			}
			if !reflect.DeepEqual(got.Assignments, want) {
				t.Errorf("assignments = %v, want %v", got.Assignments, want)
			}
			unplaced := tt.unplaced
			if unplaced == nil {
				unplaced = map[string]string{}
			}
			if !reflect.DeepEqual(got.Unplaced, unplaced) {
				t.Errorf("unplaced:\n got %q\nwant %q", got.Unplaced, unplaced)
			}
		})
	}
}

func TestScheduleDoesNotModifyInput(t *testing.T) {
	n := node("n1", cpu, gib)
	tk := task("a1", "a", 1, cpu, gib)
	before := []proto.Message{proto.Clone(n), proto.Clone(tk)}
	Schedule([]NodeInfo{{Node: n}}, []*minkepb.Task{tk})
	after := []proto.Message{n, tk}
	for i := range before {
		if !proto.Equal(before[i], after[i]) {
			t.Errorf("input %d modified: %v", i, after[i])
		}
	}
}

func TestFormat(t *testing.T) {
	bytes := []struct {
		in   int64
		want string
	}{
		{0, "0B"}, {1023, "1023B"}, {1024, "1KiB"}, {1536, "1.5KiB"},
		{512 * mib, "512MiB"}, {gib, "1GiB"}, {3 * gib / 2, "1.5GiB"}, {1 << 40, "1TiB"},
	}
	for _, tt := range bytes {
		t.Run("bytes/"+tt.want, func(t *testing.T) {
			if got := formatBytes(tt.in); got != tt.want {
				t.Errorf("formatBytes(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	cpus := []struct {
		in   int64
		want string
	}{
		{0, "0"}, {cpu, "1"}, {cpu / 2, "0.5"}, {1250 * cpu / 1000, "1.25"}, {16 * cpu, "16"},
	}
	for _, tt := range cpus {
		t.Run("cpus/"+tt.want, func(t *testing.T) {
			if got := formatCPUs(tt.in); got != tt.want {
				t.Errorf("formatCPUs(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFilterNames(t *testing.T) {
	var names []string
	for _, f := range newPipeline().filters {
		names = append(names, f.name())
	}
	want := []string{"worker", "ready", "availability", "constraint", "max-replicas-per-node", "cpu", "memory"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("filters = %v, want %v", names, want)
	}
}
