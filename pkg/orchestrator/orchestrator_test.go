package orchestrator

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

// harness runs both controllers against a real single-node in-memory Raft.
type harness struct {
	t         *testing.T
	store     *raftstore.Node
	placement *Placement
}

func newHarness(t *testing.T, nodes int) *harness {
	t.Helper()
	n := storetest.New(t)
	h := &harness{t: t, store: n}
	h.update(func(tx *raftstore.WriteTx) error {
		for i := 1; i <= nodes; i++ {
			if err := tx.Create(&minkepb.Node{
				Meta:        &minkepb.Meta{Id: fmt.Sprintf("node%d", i)},
				Description: &minkepb.NodeDescription{Worker: true, Resources: &minkepb.Resources{NanoCpus: 2e9, MemoryBytes: 1 << 30}},
				Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_READY},
			}); err != nil {
				return err
			}
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 4)
	log := slog.New(slog.DiscardHandler)
	resolve := func(s string) string { return "registry.test/" + s }
	placement := NewPlacement(n, time.Now, log)
	h.placement = placement
	replicated := NewReplicated(n, resolve, time.Now, log)
	replicated.PlaceWith(placement) // as the manager runs them
	go func() { _ = replicated.Run(ctx); done <- struct{}{} }()
	go func() { _ = placement.Run(ctx); done <- struct{}{} }()
	go func() { _ = NewUpdater(n, resolve, time.Now, log).Run(ctx); done <- struct{}{} }()
	go func() { _ = NewReaper(n, log).Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		for range 4 {
			<-done
		}
	})
	return h
}

// waitPlacing waits until the placement controller places new tasks as
// they are created: it has read the store and its first pass, which it
// starts at once, is over. Before that, the orchestrator creates tasks
// pending, and the pass places them.
func (h *harness) waitPlacing() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if placed, _ := h.placement.PlaceNew(nil, nil); placed != nil && h.placement.passes.Load() > 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the placement controller did not start placing within 10s")
		}
		time.Sleep(5 * time.Millisecond) // polls a controller's start, with the deadline above
	}
}

func (h *harness) update(fn func(*raftstore.WriteTx) error) {
	h.t.Helper()
	storetest.Update(h.t, h.store, fn)
}

func (h *harness) waitFor(what string, cond func(raftstore.ReadTx) bool) {
	h.t.Helper()
	storetest.WaitFor(h.t, h.store, what, cond)
}

func liveTasks(tx raftstore.ReadTx, svc string) []*minkepb.Task {
	var out []*minkepb.Task
	for _, t := range tx.TasksByService(svc) {
		if t.GetDesiredState() == minkepb.TaskState_RUNNING {
			out = append(out, t)
		}
	}
	return out
}

// report plays the worker: it moves a task's observed state.
func (h *harness) report(taskID string, state minkepb.TaskState) {
	h.update(func(tx *raftstore.WriteTx) error {
		t := proto.Clone(tx.Task(taskID)).(*minkepb.Task)
		t.Status = &minkepb.TaskStatus{State: state, Timestamp: timestamppb.Now()}
		return tx.Update(t)
	})
}

func createService(h *harness, replicas uint64) {
	h.update(func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "svc"}, Spec: &minkepb.ServiceSpec{
			Name: "web",
			Task: &minkepb.TaskSpec{
				Container: &minkepb.ContainerSpec{Image: "hello:latest"},
				Restart:   &minkepb.RestartPolicy{Delay: durationpb.New(0)},
			},
			Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: replicas}},
		}})
	})
}

func setReplicas(h *harness, n uint64) {
	h.update(func(tx *raftstore.WriteTx) error {
		s := proto.Clone(tx.Service("svc")).(*minkepb.Service)
		s.Spec.Mode = &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: n}}
		return tx.Update(s)
	})
}

func TestReplicatedLifecycle(t *testing.T) {
	h := newHarness(t, 3)
	createService(h, 3)

	h.waitFor("3 tasks assigned to 3 distinct nodes", func(tx raftstore.ReadTx) bool {
		nodes := map[string]bool{}
		for _, t := range liveTasks(tx, "svc") {
			if t.GetStatus().GetState() == minkepb.TaskState_ASSIGNED {
				nodes[t.GetNodeId()] = true
			}
		}
		return len(nodes) == 3
	})
	var first *minkepb.Task
	_ = h.store.View(func(tx raftstore.ReadTx) error {
		first = liveTasks(tx, "svc")[0]
		if first.GetImage() != "registry.test/hello:latest" {
			t.Errorf("image = %q, want it resolved", first.GetImage())
		}
		return nil
	})

	t.Run("failed task is replaced in its slot", func(t *testing.T) {
		h.report(first.GetMeta().GetId(), minkepb.TaskState_FAILED)
		h.waitFor("replacement", func(tx raftstore.ReadTx) bool {
			live := liveTasks(tx, "svc")
			for _, lt := range live {
				if lt.GetSlot() == first.GetSlot() && lt.GetMeta().GetId() != first.GetMeta().GetId() {
					return len(live) == 3 && tx.Task(first.GetMeta().GetId()).GetDesiredState() == minkepb.TaskState_SHUTDOWN
				}
			}
			return false
		})
	})

	t.Run("scale down shuts down the highest slots", func(t *testing.T) {
		setReplicas(h, 1)
		h.waitFor("one live task in slot 1, placed", func(tx raftstore.ReadTx) bool {
			live := liveTasks(tx, "svc")
			return len(live) == 1 && live[0].GetSlot() == 1 && live[0].GetNodeId() != ""
		})
	})

	t.Run("node down orphans and replaces its task", func(t *testing.T) {
		var victim *minkepb.Task
		_ = h.store.View(func(tx raftstore.ReadTx) error { victim = liveTasks(tx, "svc")[0]; return nil })
		h.update(func(tx *raftstore.WriteTx) error {
			n := proto.Clone(tx.Node(victim.GetNodeId())).(*minkepb.Node)
			n.Status.State = minkepb.NodeStatus_DOWN
			return tx.Update(n)
		})
		h.waitFor("replacement on another node", func(tx raftstore.ReadTx) bool {
			live := liveTasks(tx, "svc")
			return len(live) == 1 && live[0].GetNodeId() != "" && live[0].GetNodeId() != victim.GetNodeId() &&
				tx.Task(victim.GetMeta().GetId()).GetStatus().GetState() == minkepb.TaskState_ORPHANED
		})
	})

	t.Run("draining a node moves its task", func(t *testing.T) {
		var victim *minkepb.Task
		_ = h.store.View(func(tx raftstore.ReadTx) error { victim = liveTasks(tx, "svc")[0]; return nil })
		h.update(func(tx *raftstore.WriteTx) error {
			n := proto.Clone(tx.Node(victim.GetNodeId())).(*minkepb.Node)
			n.Spec = &minkepb.NodeSpec{Availability: minkepb.NodeSpec_DRAIN}
			return tx.Update(n)
		})
		h.waitFor("replacement off the drained node", func(tx raftstore.ReadTx) bool {
			live := liveTasks(tx, "svc")
			return len(live) == 1 && live[0].GetNodeId() != "" && live[0].GetNodeId() != victim.GetNodeId() &&
				tx.Task(victim.GetMeta().GetId()).GetDesiredState() == minkepb.TaskState_SHUTDOWN
		})
	})

	t.Run("removing the service removes its tasks once stopped", func(t *testing.T) {
		h.update(func(tx *raftstore.WriteTx) error { return tx.Delete(tx.Service("svc")) })
		var running []string
		h.waitFor("tasks told to shut down", func(tx raftstore.ReadTx) bool {
			running = nil
			for _, t := range tx.TasksByService("svc") {
				if t.GetDesiredState() != minkepb.TaskState_SHUTDOWN {
					return false
				}
				running = append(running, t.GetMeta().GetId())
			}
			return true
		})
		for _, id := range running {
			h.report(id, minkepb.TaskState_SHUTDOWN)
		}
		h.waitFor("no tasks left", func(tx raftstore.ReadTx) bool { return len(tx.TasksByService("svc")) == 0 })
	})
}

func TestUnplaceableTaskExplains(t *testing.T) {
	h := newHarness(t, 1)
	h.update(func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "big"}, Spec: &minkepb.ServiceSpec{
			Name: "big",
			Task: &minkepb.TaskSpec{
				Container: &minkepb.ContainerSpec{Image: "x"},
				Resources: &minkepb.ResourceRequirements{Reservations: &minkepb.Resources{MemoryBytes: 4 << 30}},
			},
			Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 1}},
		}})
	})
	h.waitFor("explanation in status", func(tx raftstore.ReadTx) bool {
		live := liveTasks(tx, "big")
		return len(live) == 1 && live[0].GetStatus().GetState() == minkepb.TaskState_PENDING &&
			len(live[0].GetStatus().GetMessage()) > len("no suitable node")
	})
}

func TestRestartPolicy(t *testing.T) {
	now := time.Unix(1000, 0)
	ended := func(state minkepb.TaskState, ago time.Duration, restarts uint64) *minkepb.Task {
		return &minkepb.Task{Restarts: restarts, RestartWindowStart: timestamppb.New(now.Add(-time.Minute)),
			Status: &minkepb.TaskStatus{State: state, Timestamp: timestamppb.New(now.Add(-ago))}}
	}
	failed := minkepb.TaskState_FAILED
	cases := []struct {
		name   string
		policy *minkepb.RestartPolicy
		last   *minkepb.Task
		wantOK bool
		wantAt time.Time
	}{
		{"new slot starts now", nil, nil, true, now},
		{"default delay 5s after failure", nil, ended(failed, time.Second, 0), true, now.Add(4 * time.Second)},
		{"none never restarts", &minkepb.RestartPolicy{Condition: minkepb.RestartPolicy_NONE}, ended(failed, 0, 0), false, time.Time{}},
		{"on-failure skips success", &minkepb.RestartPolicy{Condition: minkepb.RestartPolicy_ON_FAILURE}, ended(minkepb.TaskState_COMPLETE, 0, 0), false, time.Time{}},
		{"on-failure restarts failure", &minkepb.RestartPolicy{Condition: minkepb.RestartPolicy_ON_FAILURE, Delay: durationpb.New(0)}, ended(failed, 0, 0), true, now},
		{"orphaned restarts at once", nil, ended(minkepb.TaskState_ORPHANED, 0, 0), true, now},
		{"max 1: the first run may restart once", &minkepb.RestartPolicy{MaxAttempts: 1, Delay: durationpb.New(0)}, ended(failed, 0, 0), true, now},
		{"max 1: no second restart", &minkepb.RestartPolicy{MaxAttempts: 1}, ended(failed, 0, 1), false, time.Time{}},
		{"max 8 counts past the history retention", &minkepb.RestartPolicy{MaxAttempts: 8}, ended(failed, 0, 8), false, time.Time{}},
		{"window passed resets the count", &minkepb.RestartPolicy{MaxAttempts: 2, Window: durationpb.New(30 * time.Second), Delay: durationpb.New(0)},
			ended(failed, 0, 2), true, now},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			at, ok := restartAt(c.policy, c.last, false, now)
			if ok != c.wantOK || !at.Equal(c.wantAt) {
				t.Fatalf("got (%v, %v), want (%v, %v)", at, ok, c.wantAt, c.wantOK)
			}
		})
	}
}

func TestRestartCount(t *testing.T) {
	now := time.Unix(1000, 0)
	last := &minkepb.Task{Restarts: 2, RestartWindowStart: timestamppb.New(now.Add(-10 * time.Second))}
	next := &minkepb.Task{}
	countRestart(next, last, &minkepb.RestartPolicy{Window: durationpb.New(time.Minute)}, now)
	if next.GetRestarts() != 3 || !next.GetRestartWindowStart().AsTime().Equal(now.Add(-10*time.Second)) {
		t.Fatalf("within window: %v", next)
	}
	countRestart(next, last, &minkepb.RestartPolicy{Window: durationpb.New(5 * time.Second)}, now)
	if next.GetRestarts() != 1 || !next.GetRestartWindowStart().AsTime().Equal(now) {
		t.Fatalf("window passed: %v", next)
	}
}

// A restart that is waiting out its delay must survive events about other
// services (a review found the wake-up time was overwritten).
func TestDelayedRestartSurvivesOtherEvents(t *testing.T) {
	h := newHarness(t, 1)
	h.update(func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "slow"}, Spec: &minkepb.ServiceSpec{
			Name: "slow",
			Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "x"},
				Restart: &minkepb.RestartPolicy{Delay: durationpb.New(time.Second)}},
			Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 1}},
		}})
	})
	var first string
	h.waitFor("first task", func(tx raftstore.ReadTx) bool {
		live := liveTasks(tx, "slow")
		if len(live) == 1 {
			first = live[0].GetMeta().GetId()
		}
		return len(live) == 1
	})
	h.report(first, minkepb.TaskState_FAILED)
	createService(h, 1) // an unrelated service changes during the delay
	h.waitFor("delayed replacement", func(tx raftstore.ReadTx) bool {
		live := liveTasks(tx, "slow")
		return len(live) == 1 && live[0].GetMeta().GetId() != first && live[0].GetRestarts() == 1
	})
}

func TestPlacementConstraintsAndSpread(t *testing.T) {
	h := newHarness(t, 4)
	h.update(func(tx *raftstore.WriteTx) error {
		for i, zone := range []string{"a", "a", "b", "b"} {
			n := proto.Clone(tx.Node(fmt.Sprintf("node%d", i+1))).(*minkepb.Node)
			n.Spec = &minkepb.NodeSpec{Labels: map[string]string{"zone": zone, "disk": map[bool]string{true: "ssd", false: "hdd"}[i != 3]}}
			if err := tx.Update(n); err != nil {
				return err
			}
		}
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: "db"}, Spec: &minkepb.ServiceSpec{
			Name: "db",
			Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "x"}, Placement: &minkepb.Placement{
				Constraints: []string{"node.labels.disk==ssd"}, Preferences: []string{"spread=node.labels.zone"}}},
			Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 4}},
		}})
	})
	h.waitFor("4 tasks on ssd nodes, 2 per zone", func(tx raftstore.ReadTx) bool {
		zones := map[string]int{}
		for _, task := range liveTasks(tx, "db") {
			n := tx.Node(task.GetNodeId())
			if n == nil || task.GetStatus().GetState() != minkepb.TaskState_ASSIGNED {
				return false
			}
			if n.GetSpec().GetLabels()["disk"] != "ssd" {
				t.Fatalf("task on %s, which has no ssd", n.GetMeta().GetId())
			}
			zones[n.GetSpec().GetLabels()["zone"]]++
		}
		return zones["a"] == 2 && zones["b"] == 2
	})
}

// Many services made dirty at once are reconciled in several groups at
// once (see reconcilers): each still gets exactly its slots, once.
func TestManyServicesReconciledInGroups(t *testing.T) {
	h := newHarness(t, 3)
	const services, replicas = 5 * minGroup, 3
	h.update(func(tx *raftstore.WriteTx) error {
		for i := range services {
			if err := tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: fmt.Sprintf("svc%03d", i)}, Spec: &minkepb.ServiceSpec{
				Name: fmt.Sprintf("web%03d", i),
				Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "hello:latest"}},
				Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: replicas}},
			}}); err != nil {
				return err
			}
		}
		return nil
	})
	h.waitFor("every service's slots filled", func(tx raftstore.ReadTx) bool {
		for i := range services {
			if len(liveTasks(tx, fmt.Sprintf("svc%03d", i))) != replicas {
				return false
			}
		}
		return true
	})
	_ = h.store.View(func(tx raftstore.ReadTx) error {
		for i := range services {
			slots := map[uint64]int{}
			for _, tk := range tx.TasksByService(fmt.Sprintf("svc%03d", i)) {
				slots[tk.GetSlot()]++
			}
			if len(slots) != replicas || slots[1] != 1 || slots[2] != 1 || slots[3] != 1 {
				t.Errorf("svc%03d: tasks per slot %v, want one in each of 1..3", i, slots)
			}
		}
		return nil
	})
}

func TestSplitEven(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e", "f", "g"}
	for _, tc := range []struct {
		n    int
		want []int // group sizes
	}{{1, []int{7}}, {2, []int{3, 4}}, {3, []int{2, 2, 3}}, {7, []int{1, 1, 1, 1, 1, 1, 1}}, {10, []int{1, 1, 1, 1, 1, 1, 1}}} {
		groups := splitEven(ids, tc.n)
		var sizes []int
		var all []string
		for _, g := range groups {
			sizes = append(sizes, len(g))
			all = append(all, g...)
		}
		if !slices.Equal(sizes, tc.want) || !slices.Equal(all, ids) {
			t.Errorf("splitEven(7 ids, %d): sizes %v, ids %v; want sizes %v, every id once in order", tc.n, sizes, all, tc.want)
		}
	}
}
