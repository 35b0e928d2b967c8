package orchestrator

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func argsOf(t *minkepb.Task) string { return fmt.Sprint(t.GetSpec().GetContainer().GetArgs()) }

// TestUpdatePolicies runs a rolling update of a 4-replica service under
// each update policy, checking after every worker step the bounds the
// policy promises, and the outcome.
func TestUpdatePolicies(t *testing.T) {
	ms := func(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
	for _, tc := range []struct {
		name   string
		config *minkepb.UpdateConfig
		fail   bool // the new spec's tasks fail as soon as they run
		// bounds on running tasks during the update
		minRunning, maxRunning int
		wantState              minkepb.UpdateStatus_State
		wantArgs               string // args of every running task at the end
	}{
		{"default: stop-first one at a time", nil, false, 3, 4, minkepb.UpdateStatus_COMPLETED, "[v2]"},
		{"stop-first two at a time", &minkepb.UpdateConfig{Parallelism: 2}, false, 2, 4, minkepb.UpdateStatus_COMPLETED, "[v2]"},
		{"parallelism 0 replaces all at once", &minkepb.UpdateConfig{Parallelism: 0}, false, 0, 4, minkepb.UpdateStatus_COMPLETED, "[v2]"},
		{"start-first never drops below the replicas", &minkepb.UpdateConfig{Parallelism: 1, Order: minkepb.UpdateConfig_START_FIRST},
			false, 4, 5, minkepb.UpdateStatus_COMPLETED, "[v2]"},
		{"start-first two at a time", &minkepb.UpdateConfig{Parallelism: 2, Order: minkepb.UpdateConfig_START_FIRST},
			false, 4, 6, minkepb.UpdateStatus_COMPLETED, "[v2]"},
		// A new task that fails right after it started has freed its seat
		// (as in swarm, monitor is a window for noticing failures, not a
		// gate), so one more slot may be down when the action is taken.
		{"failure pauses", &minkepb.UpdateConfig{Parallelism: 1, Monitor: ms(3 * time.Second)}, true, 2, 4,
			minkepb.UpdateStatus_PAUSED, ""},
		{"failure rolls back", &minkepb.UpdateConfig{Parallelism: 1, FailureAction: minkepb.UpdateConfig_ROLLBACK, Monitor: ms(3 * time.Second)},
			true, 2, 4, minkepb.UpdateStatus_ROLLBACK_COMPLETED, "[v1]"},
		{"start-first failure rolls back", &minkepb.UpdateConfig{Parallelism: 1, Order: minkepb.UpdateConfig_START_FIRST,
			FailureAction: minkepb.UpdateConfig_ROLLBACK}, true, 3, 5, minkepb.UpdateStatus_ROLLBACK_COMPLETED, "[v1]"},
		{"failure with continue tries every slot", &minkepb.UpdateConfig{Parallelism: 1, FailureAction: minkepb.UpdateConfig_CONTINUE},
			true, 0, 4, minkepb.UpdateStatus_UPDATING, ""},
		{"failures within the ratio go on", &minkepb.UpdateConfig{Parallelism: 1, MaxFailureRatio: 1}, true, 0, 4,
			minkepb.UpdateStatus_UPDATING, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			s.addNode("n1", nil)
			s.addNode("n2", nil)
			spec := replicated(4, "v1")
			spec.UpdateConfig = tc.config
			s.createService("svc", spec)
			s.converge(100)
			if tc.fail {
				s.failWord = "v2"
			}
			s.target = 4
			lo, hi := 4, 4
			s.updateService("svc", func(spec *minkepb.ServiceSpec) { spec.Task.Container.Args = []string{"v2"} })
			for i := 0; i < 120; i++ {
				s.step()
				n := len(s.running("svc"))
				lo, hi = min(lo, n), max(hi, n)
				if st := s.service("svc").GetUpdateStatus().GetState(); st == tc.wantState {
					break
				}
			}
			if got := s.service("svc").GetUpdateStatus().GetState(); got != tc.wantState {
				t.Fatalf("update state %v, want %v\n%s", got, tc.wantState, s.dump())
			}
			if tc.wantState == minkepb.UpdateStatus_UPDATING {
				// Going on despite failures: within a bounded time every
				// slot has been given the new spec, none still runs v1.
				for range 60 {
					s.step()
				}
				if st := s.service("svc").GetUpdateStatus().GetState(); st != minkepb.UpdateStatus_UPDATING {
					t.Errorf("state %v, want the update still going on", st)
				}
				for _, task := range s.running("svc") {
					if argsOf(task) == "[v1]" {
						t.Errorf("slot %d still runs v1: the update stopped at a failure\n%s", task.GetSlot(), s.dump())
					}
				}
			}
			if lo < tc.minRunning || hi > tc.maxRunning {
				t.Errorf("running tasks ranged %d..%d during the update, want within %d..%d", lo, hi, tc.minRunning, tc.maxRunning)
			}
			if tc.wantArgs == "" {
				return
			}
			s.converge(100)
			running := s.running("svc")
			if len(running) != 4 {
				t.Fatalf("%d running after the update, want 4\n%s", len(running), s.dump())
			}
			for _, task := range running {
				if argsOf(task) != tc.wantArgs {
					t.Errorf("task in slot %d runs %s, want %s", task.GetSlot(), argsOf(task), tc.wantArgs)
				}
			}
		})
	}
}

// TestUpdateDelay: with parallelism 1 and a delay, each slot's
// replacement starts at least delay after the previous one was Ready.
func TestUpdateDelay(t *testing.T) {
	s := newSim(t)
	s.addNode("n1", nil)
	spec := replicated(3, "v1")
	spec.UpdateConfig = &minkepb.UpdateConfig{Parallelism: 1, Delay: durationpb.New(5 * time.Second)}
	s.createService("svc", spec)
	s.converge(100)
	s.updateService("svc", func(spec *minkepb.ServiceSpec) { spec.Task.Container.Args = []string{"v2"} })
	s.converge(200)
	var created []time.Time
	for _, task := range s.running("svc") {
		created = append(created, task.GetMeta().GetCreatedAt().AsTime())
	}
	slices.SortFunc(created, func(a, b time.Time) int { return a.Compare(b) })
	if len(created) != 3 {
		t.Fatalf("%d running, want 3", len(created))
	}
	for i := 1; i < len(created); i++ {
		if gap := created[i].Sub(created[i-1]); gap < 5*time.Second {
			t.Errorf("replacement %d started %v after the previous one, want at least the 5s delay", i+1, gap)
		}
	}
}

// TestUpdateWaitsForHealthy: a task with a healthcheck counts as started
// only once healthy, so a start-first update keeps the old task and does
// not move on while the new one is still starting.
func TestUpdateWaitsForHealthy(t *testing.T) {
	s := newSim(t)
	s.addNode("n1", nil)
	spec := replicated(2, "v1")
	spec.UpdateConfig = &minkepb.UpdateConfig{Parallelism: 1, Order: minkepb.UpdateConfig_START_FIRST}
	s.createService("svc", spec)
	s.converge(100)
	s.healthy = false
	s.updateService("svc", func(spec *minkepb.ServiceSpec) {
		spec.Task.Container.Args = []string{"v2"}
		spec.Task.Container.Healthcheck = &minkepb.HealthConfig{Test: []string{"CMD", "true"}}
	})
	for range 30 {
		s.step()
	}
	var old, starting int
	for _, task := range s.running("svc") {
		switch {
		case argsOf(task) == "[v1]":
			old++
		case task.GetStatus().GetContainer().GetHealth() == minkepb.HealthState_HEALTH_STARTING:
			starting++
		}
	}
	if old != 2 || starting != 1 {
		t.Fatalf("while unhealthy: %d old tasks running, %d new starting; want 2 and 1 (no progress before healthy)\n%s", old, starting, s.dump())
	}
	s.healthy = true
	s.converge(200)
	if st := s.service("svc").GetUpdateStatus().GetState(); st != minkepb.UpdateStatus_COMPLETED {
		t.Fatalf("state %v once healthy, want COMPLETED", st)
	}
	for _, task := range s.running("svc") {
		if argsOf(task) != "[v2]" || task.GetStatus().GetContainer().GetHealth() != minkepb.HealthState_HEALTHY {
			t.Errorf("running task %s health %v, want v2 and healthy", argsOf(task), task.GetStatus().GetContainer().GetHealth())
		}
	}
}

// TestUpdateResumesOnNewLeader: the sim makes fresh controllers for every
// pass, so an update that spans many passes is one a new leader resumed
// each time; here it is also interrupted by stopping the passes half way
// (only workers run) and resumed.
func TestUpdateResumesOnNewLeader(t *testing.T) {
	s := newSim(t)
	s.addNode("n1", nil)
	s.createService("svc", replicated(4, "v1"))
	s.converge(100)
	s.updateService("svc", func(spec *minkepb.ServiceSpec) { spec.Task.Container.Args = []string{"v2"} })
	for range 3 {
		s.step()
	}
	for range 5 { // no leader: workers only
		s.work()
		s.clock.Advance(time.Second)
	}
	s.converge(200)
	if st := s.service("svc").GetUpdateStatus().GetState(); st != minkepb.UpdateStatus_COMPLETED {
		t.Fatalf("state %v, want COMPLETED", st)
	}
	for _, task := range s.running("svc") {
		if argsOf(task) != "[v2]" {
			t.Errorf("slot %d runs %s after resuming", task.GetSlot(), argsOf(task))
		}
	}
}

// TestRebalance: 4 tasks on one node, a second node joins; a rebalance
// moves two, start-first, never running fewer than 4.
func TestRebalance(t *testing.T) {
	s := newSim(t)
	s.addNode("n1", nil)
	s.createService("svc", replicated(4, "v1"))
	s.converge(100)
	s.addNode("n2", nil)
	s.converge(50)
	if n := countOn(s.running("svc"), "n2"); n != 0 {
		t.Fatalf("%d tasks moved to n2 without a rebalance; swarm leaves them", n)
	}
	s.target = 4
	s.requestRebalance("svc")
	s.converge(200)
	running := s.running("svc")
	if len(running) != 4 || countOn(running, "n1") != 2 || countOn(running, "n2") != 2 {
		t.Fatalf("after rebalance: %d running, %d on n1, %d on n2; want 4 split 2/2\n%s", len(running),
			countOn(running, "n1"), countOn(running, "n2"), s.dump())
	}
	if s.minRunning < 4 {
		t.Errorf("running tasks dropped to %d during the rebalance, want never below 4", s.minRunning)
	}
	svc := s.service("svc")
	if svc.GetRebalancing() || svc.GetUpdateStatus().GetMessage() != "rebalance completed" {
		t.Errorf("status after rebalance: rebalancing=%v %q", svc.GetRebalancing(), svc.GetUpdateStatus().GetMessage())
	}
}

func countOn(tasks []*minkepb.Task, node string) int {
	n := 0
	for _, t := range tasks {
		if t.GetNodeId() == node {
			n++
		}
	}
	return n
}
