package orchestrator

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

// fakeClock is the time of a simulation: the store's metadata and every
// controller read it, and only the test moves it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sim drives the leader's controllers one pass at a time against a real
// in-memory Raft store, and plays the workers: assigned tasks on READY
// nodes start, tasks told to stop stop. Fresh controllers are made for
// every pass, as a new leader would: they keep nothing between passes.
type sim struct {
	t     *testing.T
	store *raftstore.Node
	clock *fakeClock
	// unhealthy: tasks with a healthcheck report HEALTH_STARTING until the
	// test sets healthy.
	healthy bool
	// fail: started tasks whose args hold this word fail at once.
	failWord string
	// minRunning is the fewest running tasks of service "svc" seen after
	// any worker step (once it first reached target).
	minRunning, target int
	passes             int
}

func newSim(t *testing.T) *sim {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	n, err := raftstore.Open(raftstore.Config{NodeID: "m1", Logger: slog.New(slog.DiscardHandler), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	deadline := time.Now().Add(10 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no leadership within 10s")
		}
		time.Sleep(5 * time.Millisecond) // waiting for an external event: Raft's election
	}
	return &sim{t: t, store: n, clock: clock, healthy: true, minRunning: -1}
}

func (s *sim) update(fn func(*raftstore.WriteTx) error) {
	s.t.Helper()
	storetest.Update(s.t, s.store, fn)
}

func (s *sim) view(fn func(tx raftstore.ReadTx)) {
	_ = s.store.View(func(tx raftstore.ReadTx) error { fn(tx); return nil })
}

func (s *sim) addNode(id string, labels map[string]string) {
	s.update(func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Node{
			Meta:        &minkepb.Meta{Id: id},
			Spec:        &minkepb.NodeSpec{Labels: labels},
			Description: &minkepb.NodeDescription{Hostname: id, Worker: true, Resources: &minkepb.Resources{NanoCpus: 4e9, MemoryBytes: 8 << 30}},
			Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_READY},
		})
	})
}

func (s *sim) setNode(id string, fn func(*minkepb.Node)) {
	s.update(func(tx *raftstore.WriteTx) error {
		n := proto.Clone(tx.Node(id)).(*minkepb.Node)
		if n.Spec == nil {
			n.Spec = &minkepb.NodeSpec{}
		}
		fn(n)
		return tx.Update(n)
	})
}

func (s *sim) createService(id string, spec *minkepb.ServiceSpec) {
	s.update(func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Service{Meta: &minkepb.Meta{Id: id}, Spec: spec})
	})
}

// updateService changes a spec as the Control API does: previous spec
// kept, and a task change starts an update.
func (s *sim) updateService(id string, fn func(*minkepb.ServiceSpec)) {
	s.update(func(tx *raftstore.WriteTx) error {
		svc := proto.Clone(tx.Service(id)).(*minkepb.Service)
		svc.PreviousSpec = proto.Clone(svc.Spec).(*minkepb.ServiceSpec)
		fn(svc.Spec)
		if !proto.Equal(svc.Spec.GetTask(), svc.PreviousSpec.GetTask()) {
			svc.UpdateStatus = &minkepb.UpdateStatus{State: minkepb.UpdateStatus_UPDATING,
				StartedAt: timestamppb.New(s.clock.Now()), Message: "update in progress"}
		}
		return tx.Update(svc)
	})
}

// pass runs every controller once. The orchestrator and the updater take
// turns going first, as their goroutines may on a leader.
func (s *sim) pass() {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	s.passes++
	if s.passes%2 == 0 {
		NewUpdater(s.store, nil, s.clock.Now, log).reconcile(ctx, nil)
	}
	NewReplicated(s.store, nil, s.clock.Now, log).reconcile(ctx, nil)
	if s.passes%2 == 1 {
		NewUpdater(s.store, nil, s.clock.Now, log).reconcile(ctx, nil)
	}
	if err := NewPlacement(s.store, s.clock.Now, log).schedule(ctx); err != nil {
		s.t.Fatal(err)
	}
	NewReaper(s.store, log).reap(ctx, nil)
}

// work plays the workers for one step.
func (s *sim) work() {
	now := timestamppb.New(s.clock.Now())
	s.update(func(tx *raftstore.WriteTx) error {
		for _, t := range tx.Tasks() {
			n := tx.Node(t.GetNodeId())
			if n == nil || n.GetStatus().GetState() != minkepb.NodeStatus_READY {
				continue
			}
			st := t.GetStatus().GetState()
			var next *minkepb.TaskStatus
			switch {
			case t.GetDesiredState() > minkepb.TaskState_RUNNING && st < minkepb.TaskState_COMPLETE:
				next = &minkepb.TaskStatus{State: minkepb.TaskState_SHUTDOWN, Message: "shut down"}
			case t.GetDesiredState() == minkepb.TaskState_RUNNING && st >= minkepb.TaskState_ASSIGNED && st < minkepb.TaskState_RUNNING:
				next = &minkepb.TaskStatus{State: minkepb.TaskState_RUNNING, Message: "started",
					Container: &minkepb.ContainerStatus{}}
				if t.GetSpec().GetContainer().GetHealthcheck() != nil {
					next.Container.Health = minkepb.HealthState_HEALTH_STARTING
				}
			case st == minkepb.TaskState_RUNNING && s.failWord != "" && strings.Contains(strings.Join(t.GetSpec().GetContainer().GetArgs(), " "), s.failWord):
				next = &minkepb.TaskStatus{State: minkepb.TaskState_FAILED, Err: "exit 1"}
			case st == minkepb.TaskState_RUNNING && isJobTask(tx, t):
				next = &minkepb.TaskStatus{State: minkepb.TaskState_COMPLETE, Message: "finished"}
			case st == minkepb.TaskState_RUNNING && s.healthy && t.GetStatus().GetContainer().GetHealth() == minkepb.HealthState_HEALTH_STARTING:
				next = &minkepb.TaskStatus{State: minkepb.TaskState_RUNNING, Container: &minkepb.ContainerStatus{Health: minkepb.HealthState_HEALTHY}}
			}
			if next == nil {
				continue
			}
			next.Timestamp = now
			c := proto.Clone(t).(*minkepb.Task)
			c.Status = next
			if err := tx.Update(c); err != nil {
				return err
			}
		}
		return nil
	})
	if s.target > 0 {
		n := len(s.running("svc"))
		if n >= s.target && s.minRunning < 0 {
			s.minRunning = n
		}
		if s.minRunning >= 0 && n < s.minRunning {
			s.minRunning = n
		}
	}
}

func isJobTask(tx *raftstore.WriteTx, t *minkepb.Task) bool {
	return IsJob(tx.Service(t.GetServiceId()).GetSpec())
}

// step is one pass of the controllers, one of the workers, and a second.
func (s *sim) step() {
	s.pass()
	s.work()
	s.clock.Advance(time.Second)
}

// fingerprint summarises what the controllers and workers decided.
func (s *sim) fingerprint() string {
	var b strings.Builder
	s.view(func(tx raftstore.ReadTx) {
		for _, t := range tx.Tasks() {
			fmt.Fprintf(&b, "%s/%s/%v/%v/%v;", t.GetMeta().GetId(), t.GetNodeId(), t.GetDesiredState(), t.GetStatus().GetState(), t.GetStatus().GetContainer().GetHealth())
		}
		for _, svc := range tx.Services() {
			fmt.Fprintf(&b, "%s/%v/%v;", svc.GetMeta().GetId(), svc.GetUpdateStatus().GetState(), svc.GetRebalancing())
		}
	})
	return b.String()
}

// converge steps until nothing changes for 10 simulated seconds (longer
// than the monitor periods used), or fails the test after max steps.
func (s *sim) converge(max int) {
	s.t.Helper()
	last, same := "", 0
	for i := 0; i < max; i++ {
		s.step()
		if fp := s.fingerprint(); fp == last {
			same++
			if same >= 10 {
				return
			}
		} else {
			last, same = fp, 0
		}
	}
	s.t.Fatalf("no convergence within %d steps:\n%s", max, s.dump())
}

func (s *sim) dump() string {
	var b strings.Builder
	s.view(func(tx raftstore.ReadTx) {
		for _, svc := range tx.Services() {
			fmt.Fprintf(&b, "service %s: %v %q\n", svc.GetMeta().GetId(), svc.GetUpdateStatus().GetState(), svc.GetUpdateStatus().GetMessage())
		}
		tasks := tx.Tasks()
		sort.Slice(tasks, func(i, j int) bool { return tasks[i].GetSlot() < tasks[j].GetSlot() })
		for _, t := range tasks {
			fmt.Fprintf(&b, "  %s slot=%d node=%s desired=%v state=%v args=%v\n", t.GetServiceId(), t.GetSlot(), t.GetNodeId(),
				t.GetDesiredState(), t.GetStatus().GetState(), t.GetSpec().GetContainer().GetArgs())
		}
	})
	return b.String()
}

// running lists a service's tasks that run and are wanted.
func (s *sim) running(svc string) []*minkepb.Task {
	var out []*minkepb.Task
	s.view(func(tx raftstore.ReadTx) {
		for _, t := range tx.TasksByService(svc) {
			if live(t) && t.GetStatus().GetState() == minkepb.TaskState_RUNNING {
				out = append(out, t)
			}
		}
	})
	return out
}

func (s *sim) service(id string) *minkepb.Service {
	var out *minkepb.Service
	s.view(func(tx raftstore.ReadTx) { out = tx.Service(id) })
	return out
}

func replicated(n uint64, args ...string) *minkepb.ServiceSpec {
	return &minkepb.ServiceSpec{
		Name: "web",
		Task: &minkepb.TaskSpec{
			Container: &minkepb.ContainerSpec{Image: "hello:latest", Args: args},
			Restart:   &minkepb.RestartPolicy{Delay: durationpb.New(0)},
		},
		Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: n}},
	}
}

// requestRebalance does what the Control API's RebalanceService does.
func (s *sim) requestRebalance(id string) {
	s.update(func(tx *raftstore.WriteTx) error {
		svc := proto.Clone(tx.Service(id)).(*minkepb.Service)
		svc.Rebalancing = true
		svc.UpdateStatus = &minkepb.UpdateStatus{State: minkepb.UpdateStatus_UPDATING,
			StartedAt: timestamppb.New(s.clock.Now()), Message: "rebalancing"}
		return tx.Update(svc)
	})
}
