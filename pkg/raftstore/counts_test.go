package raftstore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestTaskCountsMatchRecount: the counts the FSM keeps equal a recount of
// the tasks after random commands of every kind that changes tasks
// (actions, assignments, status reports, commands that fail half-way and
// change nothing), and after a snapshot is restored.
func TestTaskCountsMatchRecount(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			s := NewMemoryStore()
			index := uint64(0)
			next := func() uint64 { index++; return index }
			node := &minkepb.Node{Meta: &minkepb.Meta{Id: "n1"}, Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}}
			if err := s.apply(next(), &minkepb.StoreActions{Actions: []*minkepb.StoreAction{
				{Kind: minkepb.StoreAction_CREATE, Target: &minkepb.StoreAction_Node{Node: node}}}}); err != nil {
				t.Fatal(err)
			}
			states := slices.Sorted(maps.Keys(minkepb.TaskState_name))
			for step := 0; step < 200; step++ {
				var tasks []*minkepb.Task
				_ = s.View(func(tx ReadTx) error { tasks = tx.Tasks(); return nil })
				pick := func() *minkepb.Task {
					if len(tasks) == 0 {
						return nil
					}
					return tasks[rng.IntN(len(tasks))]
				}
				switch rng.IntN(5) {
				case 0, 1: // a command of creates, updates and removes; one in four fails at its end
					cmd := &minkepb.StoreActions{}
					seen := map[string]bool{}
					for range 1 + rng.IntN(5) {
						cur := pick()
						switch {
						case cur == nil || seen[cur.GetMeta().GetId()] || rng.IntN(3) == 0:
							nt := &minkepb.Task{Meta: &minkepb.Meta{Id: NewID()}, ServiceId: fmt.Sprint("s", rng.IntN(3)),
								JobIteration: uint64(rng.IntN(2)), DesiredState: minkepb.TaskState_RUNNING,
								Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING}}
							cmd.Actions = append(cmd.Actions, &minkepb.StoreAction{Kind: minkepb.StoreAction_CREATE,
								Target: &minkepb.StoreAction_Task{Task: nt}})
						case rng.IntN(3) == 0:
							seen[cur.GetMeta().GetId()] = true
							cmd.Actions = append(cmd.Actions, &minkepb.StoreAction{Kind: minkepb.StoreAction_REMOVE,
								Target: &minkepb.StoreAction_Task{Task: shallowClone(cur)}})
						default:
							seen[cur.GetMeta().GetId()] = true
							u := restamped(cur, cur.GetMeta().GetVersion(), nil)
							u.DesiredState = minkepb.TaskState_SHUTDOWN
							u.Status = &minkepb.TaskStatus{State: minkepb.TaskState(states[rng.IntN(len(states))])}
							cmd.Actions = append(cmd.Actions, &minkepb.StoreAction{Kind: minkepb.StoreAction_UPDATE,
								Target: &minkepb.StoreAction_Task{Task: u}})
						}
					}
					failing := rng.IntN(4) == 0
					if failing { // removing a task that does not exist fails the whole command
						cmd.Actions = append(cmd.Actions, &minkepb.StoreAction{Kind: minkepb.StoreAction_REMOVE,
							Target: &minkepb.StoreAction_Task{Task: &minkepb.Task{Meta: &minkepb.Meta{Id: "missing"}}}})
					}
					if err := s.apply(next(), cmd); (err != nil) != failing {
						t.Fatalf("step %d: apply: %v (meant to fail: %v)", step, err, failing)
					}
				case 2: // assignments
					var as []*minkepb.TaskAssignment
					for range 1 + rng.IntN(4) {
						if cur := pick(); cur != nil {
							as = append(as, &minkepb.TaskAssignment{TaskId: cur.GetMeta().GetId(), NodeId: "n1"})
						}
					}
					if err := s.applyAssignments(next(), &minkepb.TaskAssignments{Assignments: as}); err != nil {
						t.Fatal(err)
					}
				case 3: // status reports
					var rs []*minkepb.TaskStatusReport
					for range 1 + rng.IntN(4) {
						if cur := pick(); cur != nil {
							rs = append(rs, &minkepb.TaskStatusReport{TaskId: cur.GetMeta().GetId(), NodeId: cur.GetNodeId(),
								Status: &minkepb.TaskStatus{State: minkepb.TaskState(states[rng.IntN(len(states))])}})
						}
					}
					if err := s.applyStatusReports(next(), &minkepb.TaskStatusReports{Reports: rs}); err != nil {
						t.Fatal(err)
					}
				case 4: // a snapshot restored
					if err := s.restore(s.snapshot(), next()); err != nil {
						t.Fatal(err)
					}
				}
				checkTaskCounts(t, step, s)
			}
		})
	}
}

func checkTaskCounts(t *testing.T, step int, s *MemoryStore) {
	t.Helper()
	_ = s.View(func(tx ReadTx) error {
		want := map[string]map[TaskCountKey]int{}
		for _, task := range tx.Tasks() {
			m := want[task.GetServiceId()]
			if m == nil {
				m = map[TaskCountKey]int{}
				want[task.GetServiceId()] = m
			}
			m[taskCountKey(task)]++
		}
		for _, id := range []string{"s0", "s1", "s2"} {
			got := tx.TaskCounts(id)
			if w := want[id]; !maps.Equal(got, w) && !(len(got) == 0 && len(w) == 0) {
				t.Fatalf("step %d: service %s counts %v, recount %v", step, id, got, w)
			}
		}
		if n := len(listOf[*serviceTaskCounts](tx, tableTaskCounts, indexID)); n != len(want) {
			t.Fatalf("step %d: %d count rows for %d services with tasks", step, n, len(want))
		}
		return nil
	})
}

// TestTasksChangedAt: a service's record moves to the index of every
// command that creates, changes or removes one of its tasks, status
// reports and assignments included, and to nothing else's.
func TestTasksChangedAt(t *testing.T) {
	s := NewMemoryStore()
	changedAt := func(svc string) (at uint64) {
		_ = s.View(func(tx ReadTx) error { at = tx.TasksChangedAt(svc); return nil })
		return at
	}
	task := func(id, svc string) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceId: svc, NodeId: "n1", Status: &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED}}
	}
	act := func(kind minkepb.StoreAction_Kind, tk *minkepb.Task) *minkepb.StoreActions {
		return &minkepb.StoreActions{Actions: []*minkepb.StoreAction{{Kind: kind, Target: &minkepb.StoreAction_Task{Task: tk}}}}
	}
	node := &minkepb.Node{Meta: &minkepb.Meta{Id: "n1"}, Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}}
	steps := []struct {
		apply        func(index uint64) error
		want1, want2 uint64
	}{
		{func(i uint64) error {
			return s.apply(i, &minkepb.StoreActions{Actions: []*minkepb.StoreAction{{Kind: minkepb.StoreAction_CREATE, Target: &minkepb.StoreAction_Node{Node: node}}}})
		}, 0, 0},
		{func(i uint64) error { return s.apply(i, act(minkepb.StoreAction_CREATE, task("a", "s1"))) }, 2, 0},
		{func(i uint64) error { return s.apply(i, act(minkepb.StoreAction_CREATE, task("b", "s2"))) }, 2, 3},
		{func(i uint64) error {
			return s.applyStatusReports(i, &minkepb.TaskStatusReports{Reports: []*minkepb.TaskStatusReport{{TaskId: "a", NodeId: "n1",
				Status: &minkepb.TaskStatus{State: minkepb.TaskState_RUNNING}}}})
		}, 4, 3},
		{func(i uint64) error {
			// Health changes keep the counts as they are; the record moves.
			return s.applyStatusReports(i, &minkepb.TaskStatusReports{Reports: []*minkepb.TaskStatusReport{{TaskId: "a", NodeId: "n1",
				Status: &minkepb.TaskStatus{State: minkepb.TaskState_RUNNING, Message: "healthy"}}}})
		}, 5, 3},
		{func(i uint64) error {
			var cur *minkepb.Task
			_ = s.View(func(tx ReadTx) error { cur = tx.Task("b"); return nil })
			return s.apply(i, act(minkepb.StoreAction_REMOVE, cur))
		}, 5, 0},
	}
	for i, st := range steps {
		index := uint64(i + 1)
		if err := st.apply(index); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got1, got2 := changedAt("s1"), changedAt("s2"); got1 != st.want1 || got2 != st.want2 {
			t.Fatalf("step %d (index %d): s1 changed at %d, s2 at %d; want %d and %d", i, index, got1, got2, st.want1, st.want2)
		}
	}
}
