package orchestrator

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/scheduler"
)

// TestPlacementStateMatchesReload: the state kept from events equals one
// read whole from the store, after random sequences of node, service and
// task creations, changes and removals (including tasks moving between
// pending, pinned, active on a node and ended, and nodes going away).
func TestPlacementStateMatchesReload(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			store := storetest.New(t)
			rng := rand.New(rand.NewPCG(seed, 42))
			var st *placementState
			sub, err := store.ViewAndWatch(func(tx raftstore.ReadTx) error {
				st = loadPlacementState(tx)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Cancel()
			for step := 0; step < 60; step++ {
				storetest.Update(t, store, func(tx *raftstore.WriteTx) error {
					for range 1 + rng.IntN(8) {
						if err := randomChange(tx, rng); err != nil {
							return err
						}
					}
					return nil
				})
				if !st.apply(sub.Drain()) {
					t.Fatal("unexpected reset")
				}
				// A pass in between caches node lists, which later events
				// must invalidate.
				if rng.IntN(3) == 0 {
					st.input()
				}
				var fresh *placementState
				_ = store.View(func(tx raftstore.ReadTx) error { fresh = loadPlacementState(tx); return nil })
				comparePlacementStates(t, step, st, fresh)
				// The scheduler's view PlaceNew keeps follows the events
				// as well: it places a probe as a view built afresh does.
				if st.view == nil && rng.IntN(2) == 0 {
					st.view = scheduler.NewView(st.nodeInfos())
				}
				if st.view != nil {
					var probe []*minkepb.Task
					for i := range 1 + rng.IntN(6) {
						probe = append(probe, &minkepb.Task{Meta: &minkepb.Meta{Id: fmt.Sprintf("probe%d", i)},
							ServiceId: fmt.Sprintf("s%d", rng.IntN(3)), Slot: uint64(i + 1), DesiredState: minkepb.TaskState_RUNNING,
							Spec:   &minkepb.TaskSpec{Resources: &minkepb.ResourceRequirements{Reservations: &minkepb.Resources{}}},
							Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING}})
					}
					want := scheduler.ScheduleWith(fresh.nodeInfos(), probe, fresh.placement)
					got := st.view.Schedule(probe, fresh.placement)
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("step %d: the kept view places a probe\n%v %q\nwhere a fresh one places it\n%v %q",
							step, got.Assignments, got.Unplaced, want.Assignments, want.Unplaced)
					}
					for _, a := range got.Assignments { // take the probe back
						st.view.RemoveTask(a.NodeID, probe[slices.IndexFunc(probe, func(p *minkepb.Task) bool { return p.GetMeta().GetId() == a.TaskID })])
					}
				}
			}
		})
	}
}

func comparePlacementStates(t *testing.T, step int, got, want *placementState) {
	t.Helper()
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"nodes", got.nodes, want.nodes},
		{"tasks", got.tasks, want.tasks},
		{"pending", got.pending, want.pending},
		{"pinned", got.pinned, want.pinned},
		{"onNode", got.onNode, want.onNode},
		{"rules", got.rules, want.rules},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Fatalf("step %d: %s differ:\nincremental %v\nreloaded    %v", step, c.what, c.got, c.want)
		}
	}
	gn, gp, gpin := got.input()
	wn, wp, wpin := want.input()
	if !reflect.DeepEqual(gn, wn) {
		t.Fatalf("step %d: pass nodes differ:\nincremental %v\nreloaded    %v", step, gn, wn)
	}
	byID := func(ts []*minkepb.Task) []string {
		ids := make([]string, len(ts))
		for i, x := range ts {
			ids[i] = x.GetMeta().GetId()
		}
		slices.Sort(ids)
		return ids
	}
	if !slices.Equal(byID(gp), byID(wp)) {
		t.Fatalf("step %d: pending differ: %v vs %v", step, byID(gp), byID(wp))
	}
	if !slices.Equal(slices.Sorted(maps.Keys(gpin)), slices.Sorted(maps.Keys(wpin))) {
		t.Fatalf("step %d: pinned nodes differ", step)
	}
	for id := range gpin {
		if !slices.Equal(byID(gpin[id]), byID(wpin[id])) {
			t.Fatalf("step %d: pinned on %s differ", step, id)
		}
	}
}

// randomChange records one random change among a few nodes, services and
// tasks, so that the same objects are changed again and again.
func randomChange(tx *raftstore.WriteTx, rng *rand.Rand) error {
	nodeID := fmt.Sprintf("n%d", rng.IntN(4))
	svcID := fmt.Sprintf("s%d", rng.IntN(3))
	taskID := fmt.Sprintf("t%02d", rng.IntN(30))
	switch rng.IntN(6) {
	case 0: // a node appears, changes or goes
		n := tx.Node(nodeID)
		switch {
		case n == nil:
			return tx.Create(&minkepb.Node{Meta: &minkepb.Meta{Id: nodeID},
				Description: &minkepb.NodeDescription{Worker: true},
				Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}})
		case rng.IntN(3) == 0:
			return tx.Delete(n)
		default:
			n = proto.Clone(n).(*minkepb.Node)
			n.Status.State = minkepb.NodeStatus_State(rng.IntN(3))
			return tx.Update(n)
		}
	case 1: // a service appears, changes its constraints or goes
		s := tx.Service(svcID)
		switch {
		case s == nil:
			return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: svcID}, Spec: &minkepb.ServiceSpec{Name: svcID,
				Task: &minkepb.TaskSpec{Placement: &minkepb.Placement{Constraints: []string{"node.role==worker"}}}}})
		case rng.IntN(3) == 0:
			return tx.Delete(s)
		default:
			s = proto.Clone(s).(*minkepb.Service)
			s.Spec.Task.Placement.MaxReplicasPerNode = uint64(rng.IntN(3))
			s.Spec.Task.Placement.Preferences = []string{"spread=node.labels.zone"}[:rng.IntN(2)]
			return tx.Update(s)
		}
	default: // a task appears, moves on or goes
		task := tx.Task(taskID)
		if task == nil {
			task = &minkepb.Task{Meta: &minkepb.Meta{Id: taskID}, ServiceId: svcID, DesiredState: minkepb.TaskState_RUNNING,
				Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING}}
			if rng.IntN(4) == 0 {
				task.PinnedNodeId = nodeID
			}
			return tx.Create(task)
		}
		if rng.IntN(5) == 0 {
			return tx.Delete(task)
		}
		task = proto.Clone(task).(*minkepb.Task)
		switch rng.IntN(4) {
		case 0:
			task.NodeId = nodeID
			task.Status.State = minkepb.TaskState_ASSIGNED
		case 1:
			states := slices.Sorted(maps.Keys(minkepb.TaskState_name))
			task.Status.State = minkepb.TaskState(states[rng.IntN(len(states))])
		case 2:
			task.DesiredState = []minkepb.TaskState{minkepb.TaskState_RUNNING, minkepb.TaskState_SHUTDOWN}[rng.IntN(2)]
		case 3:
			task.NodeId = []string{"", nodeID}[rng.IntN(2)]
			task.Status.Message = fmt.Sprint("message ", rng.IntN(10))
		}
		return tx.Update(task)
	}
}
