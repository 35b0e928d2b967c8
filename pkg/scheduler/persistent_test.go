package scheduler

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestViewMatchesScheduleWith: a View that is kept across batches, with
// tasks added to and removed from its nodes in between, gives every batch
// the plan ScheduleWith gives on the same nodes and tasks built afresh.
func TestViewMatchesScheduleWith(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	batches := 0
	for iter := range 300 {
		nodes, _ := randomCluster(r)
		rules := randomRules(r, 5)
		view := NewView(nodes)
		infos := make([]NodeInfo, len(nodes)) // the truth, rebuilt for ScheduleWith
		for i, n := range nodes {
			infos[i] = NodeInfo{Node: n.Node, Tasks: slices.Clone(n.Tasks)}
		}
		next := 0
		for step := range 12 {
			switch op := r.Intn(4); {
			case op == 0 && len(infos) > 0: // a task ends or goes away
				i := r.Intn(len(infos))
				if len(infos[i].Tasks) == 0 {
					continue
				}
				j := r.Intn(len(infos[i].Tasks))
				view.RemoveTask(infos[i].Node.GetMeta().GetId(), infos[i].Tasks[j])
				infos[i].Tasks = slices.Delete(infos[i].Tasks, j, j+1)
			case op == 1 && len(infos) > 0: // a task placed by someone else
				i := r.Intn(len(infos))
				next++
				tk := running(task(fmt.Sprintf("x%03d", next), fmt.Sprintf("s%d", r.Intn(5)), 1, cpu/4, 64*mib))
				view.AddTask(infos[i].Node.GetMeta().GetId(), tk)
				infos[i].Tasks = append(infos[i].Tasks, tk)
			default: // a batch
				var pending []*minkepb.Task
				for range r.Intn(12) {
					next++
					pending = append(pending, task(fmt.Sprintf("p%03d", next), fmt.Sprintf("s%d", r.Intn(5)), uint64(r.Intn(10)+1),
						[]int64{0, cpu / 4, cpu / 2, cpu}[r.Intn(4)], []int64{0, 64 * mib, 512 * mib}[r.Intn(3)]))
				}
				want := ScheduleWith(infos, pending, rules.placement)
				got := view.Schedule(pending, rules.placement)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("iter %d step %d: the kept view's plan differs\n got %v %q\nwant %v %q",
						iter, step, got.Assignments, got.Unplaced, want.Assignments, want.Unplaced)
				}
				batches++
				byID := map[string]*minkepb.Task{}
				for _, p := range pending {
					byID[p.GetMeta().GetId()] = p
				}
				for _, a := range want.Assignments {
					for i := range infos {
						if infos[i].Node.GetMeta().GetId() == a.NodeID {
							placed := byID[a.TaskID]
							placed.Status.State = minkepb.TaskState_ASSIGNED
							infos[i].Tasks = append(infos[i].Tasks, placed)
						}
					}
				}
			}
		}
	}
	if batches < 500 {
		t.Fatalf("only %d batches compared", batches)
	}
}
