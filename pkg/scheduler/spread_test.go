package scheduler

import (
	"math/rand"
	"reflect"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestScheduleWith(t *testing.T) {
	tests := []struct {
		name      string
		nodes     []NodeInfo
		pending   []*minkepb.Task
		placement map[string]Placement
		// want is the number of assignments per node ID (absent = 0).
		want     map[string]int
		unplaced map[string]string
	}{
		{
			name: "constraint keeps tasks on matching nodes",
			nodes: []NodeInfo{
				{Node: node("n1", cpu, gib, labels("zone", "a"))},
				{Node: node("n2", cpu, gib, labels("zone", "b"))},
				{Node: node("n3", cpu, gib)},
			},
			pending:   replicas("s", 3, 0, 0),
			placement: map[string]Placement{"s": placementRules(0, "node.labels.zone==A")},
			want:      map[string]int{"n1": 3},
		},
		{
			name: "a != constraint matches nodes without the label",
			nodes: []NodeInfo{
				{Node: node("n1", cpu, gib, labels("zone", "a"))},
				{Node: node("n2", cpu, gib, labels("zone", "b"))},
				{Node: node("n3", cpu, gib)},
			},
			pending:   replicas("s", 4, 0, 0),
			placement: map[string]Placement{"s": placementRules(0, "node.labels.zone!=a")},
			want:      map[string]int{"n2": 2, "n3": 2},
		},
		{
			name: "constraint refusals are explained per constraint",
			nodes: []NodeInfo{
				{Node: node("n1", cpu, gib, labels("zone", "b"))},
				{Node: node("n2", cpu, gib)},
				{Node: node("n3", cpu, gib, labels("zone", "a"), down)},
				{Node: node("n4", cpu, gib, labels("zone", "a"))},
				{Node: node("n5", cpu, gib, labels("zone", "a"), manager)},
			},
			pending:   replicas("s", 1, 2*cpu, 0),
			placement: map[string]Placement{"s": placementRules(0, "node.labels.zone==a", "node.role==manager")},
			unplaced: map[string]string{
				"s.01": "no suitable node (5 nodes: 1 not ready; 2 failed constraint node.labels.zone==a, 1 failed constraint node.role==manager; 1 insufficient cpu: 2 CPUs reserved by task, at most 1 free)",
			},
		},
		{
			name: "other services are not constrained",
			nodes: []NodeInfo{
				{Node: node("n1", cpu, gib, labels("zone", "a"))},
				{Node: node("n2", cpu, gib)},
			},
			pending:   append(replicas("s", 2, 0, 0), replicas("t", 2, 0, 0)...),
			placement: map[string]Placement{"s": placementRules(0, "node.labels.zone==a")},
			want:      map[string]int{"n1": 3, "n2": 1},
		},
		{
			name: "max replicas per node leaves the surplus unplaced",
			nodes: []NodeInfo{
				{Node: node("n1", cpu, gib)},
				{Node: node("n2", cpu, gib)},
			},
			pending:   replicas("s", 5, 0, 0),
			placement: map[string]Placement{"s": placementRules(2)},
			want:      map[string]int{"n1": 2, "n2": 2},
			unplaced:  map[string]string{"s.05": "no suitable node (2 nodes: 2 at max replicas per node (2))"},
		},
		{
			name: "max replicas per node counts running tasks and only the service's",
			nodes: []NodeInfo{
				{Node: node("n1", cpu, gib), Tasks: []*minkepb.Task{running(task("r1", "s", 1, 0, 0))}},
				{Node: node("n2", cpu, gib), Tasks: []*minkepb.Task{running(task("x1", "x", 1, 0, 0))}},
				{Node: node("n3", cpu/2, gib)},
			},
			pending:   []*minkepb.Task{task("s2", "s", 2, cpu, 0), task("s3", "s", 3, cpu, 0)},
			placement: map[string]Placement{"s": placementRules(1)},
			want:      map[string]int{"n2": 1},
			unplaced: map[string]string{
				"s3": "no suitable node (3 nodes: 2 at max replicas per node (1); 1 insufficient cpu: 1 CPU reserved by task, at most 0.5 free)",
			},
		},
		{
			name: "spread evens out over label values, not nodes",
			nodes: []NodeInfo{
				{Node: node("a1", cpu, gib, labels("zone", "a"))},
				{Node: node("a2", cpu, gib, labels("zone", "a"))},
				{Node: node("a3", cpu, gib, labels("zone", "a"))},
				{Node: node("b1", cpu, gib, labels("zone", "b"))},
			},
			pending:   replicas("s", 6, 0, 0),
			placement: map[string]Placement{"s": placementRules(0, "spread=node.labels.zone")},
			want:      map[string]int{"a1": 1, "a2": 1, "a3": 1, "b1": 3},
		},
		{
			name: "nested spread: 2 zones x 2 racks, 8 replicas",
			nodes: []NodeInfo{
				{Node: node("a1-1", cpu, gib, labels("zone", "a", "rack", "1"))},
				{Node: node("a1-2", cpu, gib, labels("zone", "a", "rack", "1"))},
				{Node: node("a2-1", cpu, gib, labels("zone", "a", "rack", "2"))},
				{Node: node("b1-1", cpu, gib, labels("zone", "b", "rack", "1"))},
				{Node: node("b2-1", cpu, gib, labels("zone", "b", "rack", "2"))},
				{Node: node("b2-2", cpu, gib, labels("zone", "b", "rack", "2"))},
				{Node: node("b2-3", cpu, gib, labels("zone", "b", "rack", "2"))},
			},
			pending:   replicas("s", 8, 0, 0),
			placement: map[string]Placement{"s": placementRules(0, "spread=node.labels.zone", "spread=node.labels.rack")},
			// zone a 4 = rack 1: 2 + rack 2: 2; zone b 4 = rack 1: 2 + rack 2: 2.
			want: map[string]int{"a1-1": 1, "a1-2": 1, "a2-1": 2, "b1-1": 2, "b2-1": 1, "b2-2": 1},
		},
		{
			name: "nodes without the label form their own group",
			nodes: []NodeInfo{
				{Node: node("a", cpu, gib, labels("zone", "a"))},
				{Node: node("b", cpu, gib, labels("zone", "b"))},
				{Node: node("x", cpu, gib)},
				{Node: node("y", cpu, gib, labels("rack", "1"))},
			},
			pending:   replicas("s", 6, 0, 0),
			placement: map[string]Placement{"s": placementRules(0, "spread=node.labels.zone")},
			want:      map[string]int{"a": 2, "b": 2, "x": 1, "y": 1},
		},
		{
			name: "existing tasks of the service count toward their group",
			nodes: []NodeInfo{
				{Node: node("a", cpu, gib, labels("zone", "a")), Tasks: []*minkepb.Task{
					running(task("r1", "s", 1, 0, 0)), running(task("r2", "s", 2, 0, 0)), running(task("r3", "s", 3, 0, 0)),
				}},
				{Node: node("b", cpu, gib, labels("zone", "b"))},
				{Node: node("c", cpu, gib, labels("zone", "c")), Tasks: []*minkepb.Task{running(task("r4", "s", 4, 0, 0))}},
			},
			pending:   []*minkepb.Task{task("s5", "s", 5, 0, 0), task("s6", "s", 6, 0, 0), task("s7", "s", 7, 0, 0), task("s8", "s", 8, 0, 0)},
			placement: map[string]Placement{"s": placementRules(0, "spread=node.labels.zone")},
			// a 3, b 0, c 1 -> b, b, c, then a tie of 3s won by the emptier b.
			want: map[string]int{"b": 3, "c": 1},
		},
		{
			name: "a group that is full drops out of the spread",
			nodes: []NodeInfo{
				{Node: node("a", cpu, gib, labels("zone", "a"))},
				{Node: node("b", 8*cpu, gib, labels("zone", "b"))},
			},
			pending:   replicas("s", 4, cpu, 0),
			placement: map[string]Placement{"s": placementRules(0, "spread=node.labels.zone")},
			want:      map[string]int{"a": 1, "b": 3},
		},
		{
			name: "spread ties go to the group with the emptier node",
			nodes: []NodeInfo{
				{Node: node("a", cpu, gib, labels("zone", "a")), Tasks: []*minkepb.Task{running(task("x1", "x", 1, 0, 0))}},
				{Node: node("b", cpu, gib, labels("zone", "b"))},
			},
			pending:   replicas("s", 1, 0, 0),
			placement: map[string]Placement{"s": placementRules(0, "spread=node.labels.zone")},
			want:      map[string]int{"b": 1},
		},
		{
			name: "groups count only eligible nodes",
			nodes: []NodeInfo{
				{Node: node("a", cpu, gib, labels("zone", "a"))},
				{Node: node("b", cpu, gib, labels("zone", "b"))},
				{Node: node("c", cpu, gib, labels("zone", "c"), drained)},
				{Node: node("d", cpu, gib, labels("zone", "d"))},
			},
			pending:   replicas("s", 4, 0, 0),
			placement: map[string]Placement{"s": placementRules(0, "node.labels.zone!=a", "spread=node.labels.zone")},
			want:      map[string]int{"b": 2, "d": 2},
		},
		{
			name: "spread with max replicas per node",
			nodes: []NodeInfo{
				{Node: node("a", cpu, gib, labels("zone", "a"))},
				{Node: node("b1", cpu, gib, labels("zone", "b"))},
				{Node: node("b2", cpu, gib, labels("zone", "b"))},
			},
			pending:   replicas("s", 4, 0, 0),
			placement: map[string]Placement{"s": placementRules(1, "spread=node.labels.zone")},
			want:      map[string]int{"a": 1, "b1": 1, "b2": 1},
			unplaced:  map[string]string{"s.04": "no suitable node (3 nodes: 3 at max replicas per node (1))"},
		},
		{
			name: "a node refused for a large task is reconsidered for a smaller one",
			nodes: []NodeInfo{
				{Node: node("n1", cpu, gib)},
				{Node: node("n2", cpu, 4*gib)},
			},
			pending: []*minkepb.Task{task("s1", "s", 1, 0, 2*gib), task("s2", "s", 2, 0, 0)},
			want:    map[string]int{"n1": 1, "n2": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := make(map[string]int)
			got := ScheduleWith(tt.nodes, tt.pending, func(svc string) Placement {
				calls[svc]++
				return tt.placement[svc]
			})
			want := tt.want
			if want == nil {
				want = map[string]int{}
			}
			if c := counts(got); !reflect.DeepEqual(c, want) {
				t.Errorf("assignments per node = %v, want %v (%v)", c, want, got.Assignments)
			}
			unplaced := tt.unplaced
			if unplaced == nil {
				unplaced = map[string]string{}
			}
			if !reflect.DeepEqual(got.Unplaced, unplaced) {
				t.Errorf("unplaced:\n got %q\nwant %q", got.Unplaced, unplaced)
			}
			for svc, n := range calls {
				if n != 1 {
					t.Errorf("placement called %d times for service %s, want once", n, svc)
				}
			}
		})
	}
}

func TestScheduleWithNilPlacementIsSchedule(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for range 50 {
		nodes, pending := randomCluster(r)
		a := Schedule(nodes, pending)
		b := ScheduleWith(nodes, pending, func(string) Placement { return Placement{} })
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("ScheduleWith with zero placements differs from Schedule:\n%v\n%v", a, b)
		}
	}
}
