package raftstore

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestTaskRefsFollowEveryWrite drives a store through random task
// creations, moves between nodes, assignments, status reports and
// removals, then a snapshot restore, and checks after each command that
// TasksByService and TasksByNode list exactly the stored tasks with that
// service or node, ordered by ID, in the store and in a write transaction
// that has changed it further.
func TestTaskRefsFollowEveryWrite(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			s := NewMemoryStore()
			index := uint64(1)
			nodes := []string{"n1", "n2", "n3"}
			cmd := &minkepb.StoreActions{}
			for _, id := range nodes {
				n := &minkepb.Node{Meta: &minkepb.Meta{Id: id}, Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}}
				cmd.Actions = append(cmd.Actions, &minkepb.StoreAction{Kind: minkepb.StoreAction_CREATE, Target: &minkepb.StoreAction_Node{Node: n}})
			}
			if err := s.apply(index, cmd); err != nil {
				t.Fatal(err)
			}
			stored := func() []*minkepb.Task {
				var out []*minkepb.Task
				_ = s.View(func(tx ReadTx) error { out = tx.Tasks(); return nil })
				return out
			}
			for step := range 60 {
				index++
				tasks := stored()
				var err error
				switch op := rng.IntN(5); {
				case op == 0 || len(tasks) == 0: // create, some pending
					cmd := &minkepb.StoreActions{}
					for range 1 + rng.IntN(5) {
						tk := &minkepb.Task{Meta: &minkepb.Meta{Id: NewID()}, ServiceId: fmt.Sprintf("s%d", rng.IntN(3)),
							Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING}}
						if rng.IntN(2) == 0 {
							tk.NodeId, tk.Status.State = nodes[rng.IntN(3)], minkepb.TaskState_ASSIGNED
						}
						cmd.Actions = append(cmd.Actions, &minkepb.StoreAction{Kind: minkepb.StoreAction_CREATE, Target: &minkepb.StoreAction_Task{Task: tk}})
					}
					err = s.apply(index, cmd)
				case op == 1: // an update that moves a task (or unassigns it)
					tk := cloneTask(tasks[rng.IntN(len(tasks))])
					tk.NodeId = []string{"", "n1", "n2", "n3"}[rng.IntN(4)]
					err = s.apply(index, &minkepb.StoreActions{Actions: []*minkepb.StoreAction{{Kind: minkepb.StoreAction_UPDATE, Target: &minkepb.StoreAction_Task{Task: tk}}}})
				case op == 2: // assignments
					a := &minkepb.TaskAssignments{TimestampUnixNano: 1}
					for _, tk := range tasks {
						if tk.GetNodeId() == "" {
							a.Assignments = append(a.Assignments, &minkepb.TaskAssignment{TaskId: tk.GetMeta().GetId(), NodeId: nodes[rng.IntN(3)]})
						}
					}
					err = s.applyAssignments(index, a)
				case op == 3: // status reports, which move nothing
					r := &minkepb.TaskStatusReports{TimestampUnixNano: 1}
					for _, tk := range tasks {
						r.Reports = append(r.Reports, &minkepb.TaskStatusReport{TaskId: tk.GetMeta().GetId(), NodeId: tk.GetNodeId(),
							Status: &minkepb.TaskStatus{State: minkepb.TaskState_RUNNING}})
					}
					err = s.applyStatusReports(index, r)
				default: // removal
					tk := tasks[rng.IntN(len(tasks))]
					err = s.apply(index, &minkepb.StoreActions{Actions: []*minkepb.StoreAction{{Kind: minkepb.StoreAction_REMOVE, Target: &minkepb.StoreAction_Task{Task: tk}}}})
				}
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				checkTaskRefs(t, s, fmt.Sprintf("step %d", step))
			}
			// A write transaction that moves a task sees it moved.
			if tasks := stored(); len(tasks) > 0 {
				tx := newWriteTx(s.scratch(), func() *minkepb.Meta { return &minkepb.Meta{} })
				tk := cloneTask(tasks[0])
				tk.NodeId = "n9"
				if err := tx.Update(tk); err != nil {
					t.Fatal(err)
				}
				if got := tx.TasksByNode("n9"); len(got) != 1 || got[0].GetMeta().GetId() != tk.GetMeta().GetId() {
					t.Fatalf("write transaction: TasksByNode(n9) = %d tasks, want the one moved there", len(got))
				}
				if old := tasks[0].GetNodeId(); old != "" && slices.ContainsFunc(tx.TasksByNode(old), func(o *minkepb.Task) bool { return o.GetMeta().GetId() == tk.GetMeta().GetId() }) {
					t.Fatalf("write transaction: task still listed on %s after moving", old)
				}
			}
			r := NewMemoryStore()
			if err := r.restore(s.snapshot(), index); err != nil {
				t.Fatal(err)
			}
			checkTaskRefs(t, r, "restored")
		})
	}
}

// checkTaskRefs compares the store's by-service and by-node lists with a
// filter of all its tasks.
func checkTaskRefs(t *testing.T, s *MemoryStore, when string) {
	t.Helper()
	_ = s.View(func(tx ReadTx) error {
		all := tx.Tasks()
		for _, owner := range []string{"", "s0", "s1", "s2", "n1", "n2", "n3", "n9"} {
			var want []string
			for _, tk := range all {
				if owner != "" && (tk.GetServiceId() == owner || tk.GetNodeId() == owner) {
					want = append(want, tk.GetMeta().GetId())
				}
			}
			var got []string
			for _, tk := range append(tx.TasksByService(owner), tx.TasksByNode(owner)...) {
				got = append(got, tk.GetMeta().GetId())
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s: tasks of %q listed %v, stored %v", when, owner, got, want)
			}
		}
		for _, r := range taskRefIndexes {
			it, err := tx.txn.Get(r.table, indexID)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for o := it.Next(); o != nil; o = it.Next() {
				n++
			}
			want := 0
			for _, tk := range all {
				if r.owner(tk) != "" {
					want++
				}
			}
			if n != want {
				t.Fatalf("%s: %s holds %d references for %d tasks", when, r.table, n, want)
			}
		}
		return nil
	})
}

// TestCommandSeesItsOwnTaskWrites: the apply paths look tasks up from the
// state before the command plus the command's own writes (taskReader), so
// a command that writes one task more than once must see its first write.
func TestCommandSeesItsOwnTaskWrites(t *testing.T) {
	s := NewMemoryStore()
	node := &minkepb.Node{Meta: &minkepb.Meta{Id: "n1"}, Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}}
	act := func(kind minkepb.StoreAction_Kind, tk *minkepb.Task) *minkepb.StoreAction {
		return &minkepb.StoreAction{Kind: kind, Target: &minkepb.StoreAction_Task{Task: tk}}
	}
	pending := func(id string) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceId: "s1", Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING}}
	}
	// Created and then moved in one command; created and removed in one.
	moved := pending("t1")
	moved.NodeId = "n1"
	cmd := &minkepb.StoreActions{Actions: []*minkepb.StoreAction{
		{Kind: minkepb.StoreAction_CREATE, Target: &minkepb.StoreAction_Node{Node: node}},
		act(minkepb.StoreAction_CREATE, pending("t1")), act(minkepb.StoreAction_UPDATE, moved),
		act(minkepb.StoreAction_CREATE, pending("t2")), act(minkepb.StoreAction_REMOVE, pending("t2")),
	}}
	if err := s.apply(2, cmd); err != nil {
		t.Fatal(err)
	}
	// A second creation of a task the command created is refused, and
	// nothing of the command is stored.
	if err := s.apply(3, &minkepb.StoreActions{Actions: []*minkepb.StoreAction{
		act(minkepb.StoreAction_CREATE, pending("t3")), act(minkepb.StoreAction_CREATE, pending("t3")),
	}}); !errors.Is(err, ErrExist) {
		t.Fatalf("a task created twice in one command: %v, want ErrExist", err)
	}
	// The second report of one task is measured against the first.
	report := func(st minkepb.TaskState) *minkepb.TaskStatusReport {
		return &minkepb.TaskStatusReport{TaskId: "t1", NodeId: "n1", Status: &minkepb.TaskStatus{State: st}}
	}
	if err := s.applyStatusReports(4, &minkepb.TaskStatusReports{Reports: []*minkepb.TaskStatusReport{
		report(minkepb.TaskState_RUNNING), report(minkepb.TaskState_STARTING),
	}}); err != nil {
		t.Fatal(err)
	}
	_ = s.View(func(tx ReadTx) error {
		if got := tx.Task("t1"); got.GetNodeId() != "n1" || got.GetStatus().GetState() != minkepb.TaskState_RUNNING {
			t.Errorf("t1 on %q %v, want on n1 RUNNING (the later STARTING is behind it)", got.GetNodeId(), got.GetStatus().GetState())
		}
		if tx.Task("t2") != nil || tx.Task("t3") != nil {
			t.Error("t2 (removed) or t3 (refused) is stored")
		}
		if counts, want := tx.TaskCounts("s1"), (map[TaskCountKey]int{{State: minkepb.TaskState_RUNNING}: 1}); !maps.Equal(counts, want) {
			t.Errorf("counts of s1 = %v, want %v: the one task, counted once", counts, want)
		}
		return nil
	})
	checkTaskRefs(t, s, "after the commands")
}
