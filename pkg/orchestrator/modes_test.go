package orchestrator

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/scheduler"
)

func globalSpec(constraints ...string) *minkepb.ServiceSpec {
	spec := replicated(0, "v1")
	spec.Mode = &minkepb.ServiceSpec_Global{Global: &minkepb.GlobalService{}}
	spec.Task.Placement = &minkepb.Placement{Constraints: constraints}
	return spec
}

func nodesOf(tasks []*minkepb.Task) string {
	var ids []string
	for _, t := range tasks {
		ids = append(ids, t.GetNodeId())
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// TestGlobalMode: one task per eligible node, also on nodes that join or
// become eligible later; none on drained nodes, nodes that stop meeting a
// constraint; a paused node keeps its task; a DOWN node's task is not
// moved.
func TestGlobalMode(t *testing.T) {
	s := newSim(t)
	s.addNode("n1", map[string]string{"zone": "a"})
	s.addNode("n2", map[string]string{"zone": "b"})
	s.addNode("n3", map[string]string{"zone": "a"})
	s.createService("svc", globalSpec("node.labels.zone==a"))
	steps := []struct {
		name   string
		change func()
		want   string
	}{
		{"constraint holds on n1 and n3", func() {}, "n1,n3"},
		{"a node that joins gets one", func() { s.addNode("n4", map[string]string{"zone": "a"}) }, "n1,n3,n4"},
		{"a node whose label changes gets one", func() {
			s.setNode("n2", func(n *minkepb.Node) { n.Spec.Labels = map[string]string{"zone": "a"} })
		}, "n1,n2,n3,n4"},
		{"a drained node loses its task", func() {
			s.setNode("n1", func(n *minkepb.Node) { n.Spec.Availability = minkepb.NodeSpec_DRAIN })
		}, "n2,n3,n4"},
		{"a paused node keeps its task", func() {
			s.setNode("n2", func(n *minkepb.Node) { n.Spec.Availability = minkepb.NodeSpec_PAUSE })
		}, "n2,n3,n4"},
		{"a node that fails the constraint loses it", func() {
			s.setNode("n3", func(n *minkepb.Node) { n.Spec.Labels = map[string]string{"zone": "c"} })
		}, "n2,n4"},
		{"a DOWN node's task is not moved", func() {
			s.setNode("n4", func(n *minkepb.Node) { n.Status.State = minkepb.NodeStatus_DOWN })
		}, "n2"},
		{"it comes back", func() {
			s.setNode("n4", func(n *minkepb.Node) { n.Status.State = minkepb.NodeStatus_READY })
		}, "n2,n4"},
		{"an undrained node gets one again", func() {
			s.setNode("n1", func(n *minkepb.Node) { n.Spec.Availability = minkepb.NodeSpec_ACTIVE })
		}, "n1,n2,n4"},
	}
	for _, st := range steps {
		st.change()
		s.converge(100)
		if got := nodesOf(s.running("svc")); got != st.want {
			t.Fatalf("%s: running on %s, want %s\n%s", st.name, got, st.want, s.dump())
		}
	}
	// A paused node does not get a new task when its task ends.
	s.setNode("n2", func(n *minkepb.Node) { n.Spec.Availability = minkepb.NodeSpec_PAUSE })
	var onN2 string
	s.view(func(tx raftstore.ReadTx) {
		for _, task := range tx.TasksByNode("n2") {
			if live(task) {
				onN2 = task.GetMeta().GetId()
			}
		}
	})
	s.update(func(tx *raftstore.WriteTx) error {
		c := proto.Clone(tx.Task(onN2)).(*minkepb.Task)
		c.Status = &minkepb.TaskStatus{State: minkepb.TaskState_FAILED, Timestamp: timestamppb.New(s.clock.Now())}
		return tx.Update(c)
	})
	s.converge(100)
	if got := nodesOf(s.running("svc")); got != "n1,n4" {
		t.Errorf("after n2's task failed while paused: running on %s, want n1,n4", got)
	}
}

func jobSpec(total, concurrent uint64) *minkepb.ServiceSpec {
	spec := replicated(0, "job")
	spec.Mode = &minkepb.ServiceSpec_ReplicatedJob{ReplicatedJob: &minkepb.ReplicatedJob{TotalCompletions: total, MaxConcurrent: concurrent}}
	return spec
}

func countState(s *sim, svc string, state minkepb.TaskState) (n, all int) {
	s.view(func(tx raftstore.ReadTx) {
		for _, t := range tx.TasksByService(svc) {
			all++
			if t.GetStatus().GetState() == state {
				n++
			}
		}
	})
	return n, all
}

// TestReplicatedJob: total completions at most max-concurrent at a time,
// completed tasks never restarted, a new iteration runs again.
func TestReplicatedJob(t *testing.T) {
	for _, tc := range []struct {
		name              string
		total, concurrent uint64
		wantMax           int
	}{
		{"5 two at a time", 5, 2, 2},
		{"3 all at once (max-concurrent 0)", 3, 0, 3},
		{"1", 1, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			s.addNode("n1", nil)
			s.addNode("n2", nil)
			s.createService("svc", jobSpec(tc.total, tc.concurrent))
			peak := 0
			for range 40 {
				s.pass()
				active := 0
				s.view(func(tx raftstore.ReadTx) {
					for _, task := range tx.TasksByService("svc") {
						if live(task) && !IsTerminal(task.GetStatus().GetState()) {
							active++
						}
					}
				})
				peak = max(peak, active)
				s.work()
				s.clock.Advance(time.Second)
			}
			if peak != tc.wantMax {
				t.Errorf("at most %d tasks ran at once, want %d", peak, tc.wantMax)
			}
			done, all := countState(s, "svc", minkepb.TaskState_COMPLETE)
			if done != int(tc.total) || all != int(tc.total) {
				t.Fatalf("%d tasks, %d complete; want %d, all complete, none restarted\n%s", all, done, tc.total, s.dump())
			}
			// A new iteration (a spec change) runs the job again.
			s.update(func(tx *raftstore.WriteTx) error {
				svc := proto.Clone(tx.Service("svc")).(*minkepb.Service)
				svc.JobStatus = &minkepb.JobStatus{JobIteration: 1}
				return tx.Update(svc)
			})
			s.converge(100)
			done, _ = countState(s, "svc", minkepb.TaskState_COMPLETE)
			if done != 2*int(tc.total) {
				t.Errorf("%d completions after the second run, want %d", done, 2*tc.total)
			}
		})
	}
}

// TestJobFailureIsRetried: a failed job task is replaced (the default
// condition "any" acts as on-failure), a completed one is not.
func TestJobFailureIsRetried(t *testing.T) {
	s := newSim(t)
	s.addNode("n1", nil)
	s.failWord = "job"
	s.createService("svc", jobSpec(1, 1))
	for range 5 {
		s.step()
	}
	failedN, all := countState(s, "svc", minkepb.TaskState_FAILED)
	if failedN < 2 || all < 3 {
		t.Fatalf("%d failed of %d tasks: want the failures retried\n%s", failedN, all, s.dump())
	}
	s.failWord = ""
	s.converge(100)
	done, _ := countState(s, "svc", minkepb.TaskState_COMPLETE)
	if done != 1 || len(s.running("svc")) != 0 {
		t.Errorf("%d completed, %d running; want 1 and none", done, len(s.running("svc")))
	}
}

// TestGlobalJob: one completion per eligible node, including a node that
// joins later.
func TestGlobalJob(t *testing.T) {
	s := newSim(t)
	s.addNode("n1", nil)
	s.addNode("n2", nil)
	spec := replicated(0, "job")
	spec.Mode = &minkepb.ServiceSpec_GlobalJob{GlobalJob: &minkepb.GlobalJob{}}
	s.createService("svc", spec)
	s.converge(100)
	s.addNode("n3", nil)
	s.converge(100)
	done, all := countState(s, "svc", minkepb.TaskState_COMPLETE)
	if done != 3 || all != 3 {
		t.Fatalf("%d tasks, %d complete; want 3, one per node\n%s", all, done, s.dump())
	}
}

// TestTaskHistoryLimit: a slot keeps at most the cluster's limit of ended
// tasks; the default is 5 and a new limit applies at once.
func TestTaskHistoryLimit(t *testing.T) {
	s := newSim(t)
	s.addNode("n1", nil)
	s.update(func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Cluster{Meta: &minkepb.Meta{Id: "cluster"}, Spec: &minkepb.ClusterSpec{Name: "default"}})
	})
	s.failWord = "v1"
	s.createService("svc", replicated(1, "v1"))
	ended := func() int {
		n := 0
		s.view(func(tx raftstore.ReadTx) {
			for _, t := range tx.TasksByService("svc") {
				if !live(t) {
					n++
				}
			}
		})
		return n
	}
	for range 30 {
		s.step()
	}
	if n := ended(); n != DefaultHistoryRetention {
		t.Errorf("%d ended tasks kept, want the default %d", n, DefaultHistoryRetention)
	}
	limit := int64(2)
	s.update(func(tx *raftstore.WriteTx) error {
		c := proto.Clone(tx.Cluster()).(*minkepb.Cluster)
		c.Spec.Orchestration = &minkepb.OrchestrationConfig{TaskHistoryRetentionLimit: &limit}
		return tx.Update(c)
	})
	for range 10 {
		s.step()
	}
	if n := ended(); n != 2 {
		t.Errorf("%d ended tasks kept, want the new limit 2", n)
	}
}

// TestRestartAt is the restart policy's decision table.
func TestRestartAt(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	ended := func(state minkepb.TaskState, restarts uint64, windowStart time.Time) *minkepb.Task {
		t := &minkepb.Task{Restarts: restarts, Status: &minkepb.TaskStatus{State: state, Timestamp: timestamppb.New(now.Add(-2 * time.Second))}}
		if !windowStart.IsZero() {
			t.RestartWindowStart = timestamppb.New(windowStart)
		}
		return t
	}
	d := func(x time.Duration) *durationpb.Duration { return durationpb.New(x) }
	for _, tc := range []struct {
		name       string
		policy     *minkepb.RestartPolicy
		last       *minkepb.Task
		replaceNow bool
		wantOK     bool
		wantAt     time.Time
	}{
		{"new slot starts now", nil, nil, false, true, now},
		{"system replacement ignores the policy", &minkepb.RestartPolicy{Condition: minkepb.RestartPolicy_NONE},
			ended(minkepb.TaskState_SHUTDOWN, 0, time.Time{}), true, true, now},
		{"any: failed restarts after the default 5s", nil, ended(minkepb.TaskState_FAILED, 0, time.Time{}), false, true, now.Add(3 * time.Second)},
		{"any: completed restarts too", &minkepb.RestartPolicy{Delay: d(0)}, ended(minkepb.TaskState_COMPLETE, 0, time.Time{}), false, true, now.Add(-2 * time.Second)},
		{"on-failure: completed stays", &minkepb.RestartPolicy{Condition: minkepb.RestartPolicy_ON_FAILURE}, ended(minkepb.TaskState_COMPLETE, 0, time.Time{}), false, false, time.Time{}},
		{"on-failure: failed restarts", &minkepb.RestartPolicy{Condition: minkepb.RestartPolicy_ON_FAILURE, Delay: d(time.Second)},
			ended(minkepb.TaskState_FAILED, 0, time.Time{}), false, true, now.Add(-time.Second)},
		{"none: never", &minkepb.RestartPolicy{Condition: minkepb.RestartPolicy_NONE}, ended(minkepb.TaskState_FAILED, 0, time.Time{}), false, false, time.Time{}},
		{"max attempts reached", &minkepb.RestartPolicy{MaxAttempts: 2}, ended(minkepb.TaskState_FAILED, 2, time.Time{}), false, false, time.Time{}},
		{"max attempts not reached", &minkepb.RestartPolicy{MaxAttempts: 3, Delay: d(0)}, ended(minkepb.TaskState_FAILED, 2, time.Time{}), false, true, now.Add(-2 * time.Second)},
		{"window passed resets the count", &minkepb.RestartPolicy{MaxAttempts: 2, Window: d(10 * time.Second), Delay: d(0)},
			ended(minkepb.TaskState_FAILED, 2, now.Add(-time.Minute)), false, true, now.Add(-2 * time.Second)},
		{"within the window the count holds", &minkepb.RestartPolicy{MaxAttempts: 2, Window: d(10 * time.Minute)},
			ended(minkepb.TaskState_FAILED, 2, now.Add(-time.Minute)), false, false, time.Time{}},
		{"orphaned restarts at once", &minkepb.RestartPolicy{Delay: d(time.Hour)}, ended(minkepb.TaskState_ORPHANED, 0, time.Time{}), false, true, now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, ok := restartAt(tc.policy, tc.last, tc.replaceNow, now)
			if ok != tc.wantOK || (ok && !at.Equal(tc.wantAt)) {
				t.Errorf("restartAt = %v, %v; want %v, %v", at, ok, tc.wantAt, tc.wantOK)
			}
		})
	}
}

// TestGlobalRules is the global service's node eligibility table.
func TestGlobalRules(t *testing.T) {
	node := func(state minkepb.NodeStatus_State, avail minkepb.NodeSpec_Availability, worker bool, zone string) *minkepb.Node {
		return &minkepb.Node{Meta: &minkepb.Meta{Id: "n"}, Spec: &minkepb.NodeSpec{Availability: avail, Labels: map[string]string{"zone": zone}},
			Description: &minkepb.NodeDescription{Worker: worker}, Status: &minkepb.NodeStatus{State: state}}
	}
	zoneA, _ := scheduler.ParseConstraint("node.labels.zone==a")
	for _, tc := range []struct {
		name string
		n    *minkepb.Node
		want slotRules
	}{
		{"ready active worker", node(minkepb.NodeStatus_READY, minkepb.NodeSpec_ACTIVE, true, "a"), slotRules{place: true}},
		{"removed node", nil, slotRules{evict: true}},
		{"not a worker", node(minkepb.NodeStatus_READY, minkepb.NodeSpec_ACTIVE, false, "a"), slotRules{evict: true}},
		{"fails the constraint", node(minkepb.NodeStatus_READY, minkepb.NodeSpec_ACTIVE, true, "b"), slotRules{evict: true}},
		{"drained", node(minkepb.NodeStatus_READY, minkepb.NodeSpec_DRAIN, true, "a"), slotRules{evict: true}},
		{"paused keeps, adds nothing", node(minkepb.NodeStatus_READY, minkepb.NodeSpec_PAUSE, true, "a"), slotRules{}},
		{"down: nothing new (its task is orphaned)", node(minkepb.NodeStatus_DOWN, minkepb.NodeSpec_ACTIVE, true, "a"), slotRules{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := globalRules(tc.n, []scheduler.Constraint{zoneA}); got != tc.want {
				t.Errorf("globalRules = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestExpired is the reaper's decision table.
func TestExpired(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task := func(id string, slot uint64, node string, desired, state minkepb.TaskState, age int, iteration uint64) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: id, CreatedAt: timestamppb.New(base.Add(time.Duration(age) * time.Second))},
			Slot: slot, NodeId: node, DesiredState: desired, Status: &minkepb.TaskStatus{State: state}, JobIteration: iteration}
	}
	ready := func(string) *minkepb.Node {
		return &minkepb.Node{Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}}
	}
	const (
		run, shut, done = minkepb.TaskState_RUNNING, minkepb.TaskState_SHUTDOWN, minkepb.TaskState_COMPLETE
	)
	for _, tc := range []struct {
		name  string
		spec  *minkepb.ServiceSpec
		job   uint64
		tasks []*minkepb.Task
		limit int64
		want  string
	}{
		{"oldest ended beyond the limit, per slot", replicated(2), 0, []*minkepb.Task{
			task("a1", 1, "n", shut, shut, 1, 0), task("a2", 1, "n", shut, shut, 2, 0), task("a3", 1, "n", shut, shut, 3, 0),
			task("a4", 1, "n", run, run, 4, 0), task("b1", 2, "n", shut, shut, 1, 0),
		}, 1, "a1,a2"},
		{"limit 0 keeps no history", replicated(1), 0, []*minkepb.Task{
			task("a1", 1, "n", shut, shut, 1, 0), task("a2", 1, "n", run, run, 2, 0),
		}, 0, "a1"},
		{"a task still stopping is kept", replicated(1), 0, []*minkepb.Task{
			task("a1", 1, "n", shut, run, 1, 0), task("a2", 1, "n", shut, shut, 2, 0),
		}, 0, "a2"},
		{"global: per node", globalSpec(), 0, []*minkepb.Task{
			task("a1", 0, "n1", shut, shut, 1, 0), task("a2", 0, "n1", shut, shut, 2, 0), task("b1", 0, "n2", shut, shut, 1, 0),
		}, 1, "a1"},
		{"a job's completions of this run are its result", jobSpec(3, 1), 1, []*minkepb.Task{
			task("a1", 1, "n", done, done, 1, 1), task("a2", 1, "n", done, done, 2, 0), task("b1", 2, "n", shut, shut, 1, 1),
		}, 0, "a2,b1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &minkepb.Service{Meta: &minkepb.Meta{Id: "svc"}, Spec: tc.spec, JobStatus: &minkepb.JobStatus{JobIteration: tc.job}}
			var ids []string
			for _, x := range Expired(svc, tc.tasks, tc.limit, ready) {
				ids = append(ids, x.GetMeta().GetId())
			}
			if got := strings.Join(ids, ","); got != tc.want {
				t.Errorf("expired %q, want %q", got, tc.want)
			}
		})
	}
}

// TestConvergenceProperties: over random clusters and services, after
// convergence a replicated service has exactly one running task per slot
// (never two), a global service exactly one on each eligible node and none
// elsewhere; and the same after random disruptions (drains, lost nodes,
// label changes, spec updates in either order, scaling).
func TestConvergenceProperties(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 4
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			s := newSim(t)
			nodes := 2 + rng.Intn(5)
			for i := 1; i <= nodes; i++ {
				s.addNode(fmt.Sprintf("n%d", i), map[string]string{"zone": []string{"a", "b"}[rng.Intn(2)]})
			}
			services := 1 + rng.Intn(3)
			for i := 0; i < services; i++ {
				var spec *minkepb.ServiceSpec
				if rng.Intn(2) == 0 {
					spec = replicated(uint64(rng.Intn(7)), "v1")
				} else if rng.Intn(2) == 0 {
					spec = globalSpec()
				} else {
					spec = globalSpec("node.labels.zone==a")
				}
				if rng.Intn(2) == 0 {
					spec.UpdateConfig = &minkepb.UpdateConfig{Parallelism: uint64(rng.Intn(3)), Order: minkepb.UpdateConfig_Order(rng.Intn(2))}
				}
				spec.Name = fmt.Sprintf("s%d", i)
				s.createService(spec.Name, spec)
			}
			s.converge(150)
			checkConverged(t, s)
			for round := 0; round < 3; round++ {
				node := fmt.Sprintf("n%d", 1+rng.Intn(nodes))
				switch rng.Intn(5) {
				case 0:
					s.setNode(node, func(n *minkepb.Node) { n.Spec.Availability = minkepb.NodeSpec_DRAIN })
				case 1:
					s.setNode(node, func(n *minkepb.Node) { n.Status.State = minkepb.NodeStatus_DOWN })
				case 2:
					s.setNode(node, func(n *minkepb.Node) {
						n.Spec.Labels = map[string]string{"zone": []string{"a", "b"}[rng.Intn(2)]}
						n.Spec.Availability = minkepb.NodeSpec_ACTIVE
						n.Status.State = minkepb.NodeStatus_READY
					})
				case 3:
					s.updateService(fmt.Sprintf("s%d", rng.Intn(services)), func(spec *minkepb.ServiceSpec) {
						spec.Task.Container.Args = []string{fmt.Sprint("v", round+2)}
					})
				case 4:
					id := fmt.Sprintf("s%d", rng.Intn(services))
					s.updateService(id, func(spec *minkepb.ServiceSpec) {
						if r := spec.GetReplicated(); r != nil {
							r.Replicas = uint64(rng.Intn(7))
						}
					})
				}
				s.converge(200)
				checkConverged(t, s)
			}
		})
	}
}

// checkConverged asserts the orchestration invariants on the current state.
func checkConverged(t *testing.T, s *sim) {
	t.Helper()
	s.view(func(tx raftstore.ReadTx) {
		for _, svc := range tx.Services() {
			id := svc.GetMeta().GetId()
			var running []*minkepb.Task
			for _, task := range tx.TasksByService(id) {
				if live(task) && task.GetStatus().GetState() == minkepb.TaskState_RUNNING {
					running = append(running, task)
					if !upToDate(task, svc) {
						t.Errorf("%s: task %s runs an out-of-date spec after convergence", id, task.GetMeta().GetId())
					}
				}
			}
			if IsGlobal(svc.GetSpec()) {
				constraints := placementOf(svc.GetSpec().GetTask().GetPlacement()).Constraints
				want := map[string]bool{}
				for _, n := range tx.Nodes() {
					if globalRules(n, constraints).place {
						want[n.GetMeta().GetId()] = true
					}
				}
				got := map[string]int{}
				for _, task := range running {
					got[task.GetNodeId()]++
				}
				for n := range want {
					if got[n] != 1 {
						t.Errorf("%s (global): %d running tasks on eligible node %s, want 1\n%s", id, got[n], n, s.dump())
					}
				}
				for n, c := range got {
					if !want[n] {
						t.Errorf("%s (global): %d running tasks on ineligible node %s", id, c, n)
					}
				}
				continue
			}
			want := svc.GetSpec().GetReplicated().GetReplicas()
			slots := map[uint64]int{}
			for _, task := range running {
				slots[task.GetSlot()]++
			}
			for slot := uint64(1); slot <= want; slot++ {
				if slots[slot] > 1 || (slots[slot] == 0 && eligibleCount(tx) > 0) {
					t.Errorf("%s: slot %d has %d running tasks, want exactly 1 (at most 1 with no eligible node; %d eligible)\n%s", id, slot, slots[slot], eligibleCount(tx), s.dump())
				}
			}
			for slot, n := range slots {
				if slot > want {
					t.Errorf("%s: %d running tasks in slot %d beyond the %d replicas", id, n, slot, want)
				}
			}
		}
	})
}

func eligibleCount(tx raftstore.ReadTx) int {
	n := 0
	for _, node := range tx.Nodes() {
		if globalRules(node, nil).place {
			n++
		}
	}
	return n
}

// TestGlobalUpdateWithConstraint: an update that also excludes a node
// completes: the excluded node's task is removed, not waited for.
func TestGlobalUpdateWithConstraint(t *testing.T) {
	for _, order := range []minkepb.UpdateConfig_Order{minkepb.UpdateConfig_STOP_FIRST, minkepb.UpdateConfig_START_FIRST} {
		t.Run(order.String(), func(t *testing.T) {
			s := newSim(t)
			s.addNode("n1", nil)
			s.addNode("n2", nil)
			s.addNode("n3", nil)
			spec := globalSpec()
			spec.UpdateConfig = &minkepb.UpdateConfig{Parallelism: 0, Order: order}
			s.createService("svc", spec)
			s.converge(100)
			s.updateService("svc", func(spec *minkepb.ServiceSpec) {
				spec.Task.Container.Args = []string{"v2"}
				spec.Task.Placement = &minkepb.Placement{Constraints: []string{"node.hostname!=n1"}}
			})
			s.converge(200)
			if st := s.service("svc").GetUpdateStatus().GetState(); st != minkepb.UpdateStatus_COMPLETED {
				t.Fatalf("update %v, want COMPLETED\n%s", st, s.dump())
			}
			if got := nodesOf(s.running("svc")); got != "n2,n3" {
				t.Errorf("running on %s, want n2,n3", got)
			}
		})
	}
}

// TestGlobalReservations: a global task is not started on a node without
// its reservations free, and a start-first update that would overcommit a
// node (two tasks of 3 CPUs on 4) replaces its task stop-first.
func TestGlobalReservations(t *testing.T) {
	s, spec := bigOnN1(t)
	spec.UpdateConfig = &minkepb.UpdateConfig{Parallelism: 0, Order: minkepb.UpdateConfig_START_FIRST}
	s.createService("svc", spec)
	s.converge(100)
	if got := nodesOf(s.running("svc")); got != "n2" {
		t.Fatalf("global task running on %s, want only n2 (n1 has 2 CPUs free, the task reserves 3)", got)
	}
	s.target = 0
	peak := 0
	s.updateService("svc", func(spec *minkepb.ServiceSpec) { spec.Task.Container.Args = []string{"v2"} })
	for range 40 {
		s.step()
		var reserved int64
		s.view(func(tx raftstore.ReadTx) {
			for _, task := range tx.TasksByNode("n2") {
				if task.GetDesiredState() <= minkepb.TaskState_RUNNING && task.GetStatus().GetState() <= minkepb.TaskState_RUNNING {
					reserved += task.GetSpec().GetResources().GetReservations().GetNanoCpus()
				}
			}
		})
		peak = max(peak, int(reserved/1e9))
	}
	if peak > 4 {
		t.Errorf("n2 had %d CPUs reserved during the update, more than its 4", peak)
	}
	if st := s.service("svc").GetUpdateStatus().GetState(); st != minkepb.UpdateStatus_COMPLETED {
		t.Errorf("update %v, want COMPLETED", st)
	}
}

// TestCompletedJobTasksAreDesiredComplete: a completed job task is marked
// desired COMPLETE, the record of the run, and stays.
func TestCompletedJobTasksAreDesiredComplete(t *testing.T) {
	s := newSim(t)
	s.addNode("n1", nil)
	s.createService("svc", jobSpec(2, 0))
	s.converge(100)
	s.view(func(tx raftstore.ReadTx) {
		for _, task := range tx.TasksByService("svc") {
			if task.GetDesiredState() != minkepb.TaskState_COMPLETE || task.GetStatus().GetState() != minkepb.TaskState_COMPLETE {
				t.Errorf("task in slot %d: desired %v, state %v; want both COMPLETE", task.GetSlot(), task.GetDesiredState(), task.GetStatus().GetState())
			}
		}
	})
}

// TestGlobalTaskWaitsForRoom: a global task whose reservations do not fit
// its node waits PENDING, pinned to that node, with a status saying why in
// numbers; once room is made it is assigned there, and never elsewhere.
func TestGlobalTaskWaitsForRoom(t *testing.T) {
	s, spec := bigOnN1(t)
	s.createService("svc", spec)
	s.converge(100)
	var waiting []*minkepb.Task
	s.view(func(tx raftstore.ReadTx) {
		for _, task := range tx.TasksByService("svc") {
			if task.GetNodeId() == "" {
				waiting = append(waiting, task)
			}
		}
	})
	if len(waiting) != 1 || waiting[0].GetPinnedNodeId() != "n1" || waiting[0].GetStatus().GetState() != minkepb.TaskState_PENDING {
		t.Fatalf("waiting tasks %v; want one PENDING task pinned to n1", waiting)
	}
	msg := waiting[0].GetStatus().GetMessage()
	for _, want := range []string{"no suitable node (1 node: 1 insufficient cpu"} {
		if !strings.Contains(msg, want) {
			t.Errorf("status %q does not say %q", msg, want)
		}
	}
	if got := nodesOf(s.running("svc")); got != "n2" {
		t.Fatalf("global task running on %s, want only n2 while n1 lacks room", got)
	}
	// Make room on n1: the waiting task (not a new one) is assigned there.
	s.updateService("big", func(spec *minkepb.ServiceSpec) { spec.Task.Placement.Constraints = []string{"node.id==n2"} })
	s.update(func(tx *raftstore.WriteTx) error {
		svc := proto.Clone(tx.Service("big")).(*minkepb.Service)
		svc.Spec.Mode = &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 0}}
		return tx.Update(svc)
	})
	s.converge(100)
	if got := nodesOf(s.running("svc")); got != "n1,n2" {
		t.Fatalf("global task running on %s, want n1,n2 once n1 has room", got)
	}
	s.view(func(tx raftstore.ReadTx) {
		if task := tx.Task(waiting[0].GetMeta().GetId()); task.GetNodeId() != "n1" {
			t.Errorf("the waiting task went to node %q, want n1", task.GetNodeId())
		}
	})
}

// bigOnN1 is two 4-CPU nodes with service "big" holding 2 CPUs of n1, and
// the spec of a global service whose tasks reserve 3 CPUs: it fits on n2
// but not on n1 until big moves.
func bigOnN1(t *testing.T) (*sim, *minkepb.ServiceSpec) {
	t.Helper()
	s := newSim(t)
	s.addNode("n1", nil) // 4 CPUs
	s.addNode("n2", nil)
	s.createService("big", replicated(1, "v1"))
	s.update(func(tx *raftstore.WriteTx) error {
		svc := proto.Clone(tx.Service("big")).(*minkepb.Service)
		svc.Spec.Task.Resources = &minkepb.ResourceRequirements{Reservations: &minkepb.Resources{NanoCpus: 2e9}}
		svc.Spec.Task.Placement = &minkepb.Placement{Constraints: []string{"node.id==n1"}}
		return tx.Update(svc)
	})
	s.converge(100)
	spec := globalSpec()
	spec.Name = "agent"
	spec.Task.Resources = &minkepb.ResourceRequirements{Reservations: &minkepb.Resources{NanoCpus: 3e9}}
	return s, spec
}
