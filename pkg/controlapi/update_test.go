package controlapi

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

func create(t *testing.T, s *Server, sp *minkepb.ServiceSpec) *minkepb.Service {
	t.Helper()
	resp, err := s.CreateService(context.Background(), &minkepb.CreateServiceRequest{Spec: sp})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetService()
}

func update(s *Server, svc *minkepb.Service, sp *minkepb.ServiceSpec, rollback bool) (*minkepb.Service, error) {
	resp, err := s.UpdateService(context.Background(), &minkepb.UpdateServiceRequest{
		ServiceId: svc.GetMeta().GetId(), ServiceVersion: svc.GetMeta().GetVersion(), Spec: sp, Rollback: rollback})
	return resp.GetService(), err
}

func withArgs(sp *minkepb.ServiceSpec, args ...string) *minkepb.ServiceSpec {
	sp = proto.Clone(sp).(*minkepb.ServiceSpec)
	sp.Task.Container.Args = args
	return sp
}

// TestUpdateServiceStartsUpdatesAndRollsBack: a task change keeps the old
// spec and starts an update; a scale does not; rollback swaps the specs;
// a job's change starts its next run.
func TestUpdateServiceStartsUpdatesAndRollsBack(t *testing.T) {
	s, _ := newServer(t)
	v1 := spec("web", "hello:latest", 2)
	svc := create(t, s, v1)

	scaled := proto.Clone(v1).(*minkepb.ServiceSpec)
	scaled.GetReplicated().Replicas = 3
	svc, err := update(s, svc, scaled, false)
	if err != nil {
		t.Fatal(err)
	}
	if svc.GetUpdateStatus() != nil || !proto.Equal(svc.GetPreviousSpec(), v1) {
		t.Errorf("after a scale: update status %v, previous %v; want no update and the old spec kept", svc.GetUpdateStatus(), svc.GetPreviousSpec())
	}

	v2 := withArgs(scaled, "v2")
	svc, err = update(s, svc, v2, false)
	if err != nil {
		t.Fatal(err)
	}
	if st := svc.GetUpdateStatus(); st.GetState() != minkepb.UpdateStatus_UPDATING || st.GetStartedAt() == nil {
		t.Errorf("after a task change: update status %v, want UPDATING with a start time", st)
	}
	if !proto.Equal(svc.GetPreviousSpec(), scaled) {
		t.Errorf("previous spec %v, want the spec before the update", svc.GetPreviousSpec())
	}

	svc, err = update(s, svc, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(svc.GetSpec(), scaled) || !proto.Equal(svc.GetPreviousSpec(), v2) {
		t.Errorf("after rollback: spec %v previous %v; want them swapped", svc.GetSpec(), svc.GetPreviousSpec())
	}
	if st := svc.GetUpdateStatus(); st.GetState() != minkepb.UpdateStatus_ROLLBACK_STARTED || st.GetMessage() != "manually requested rollback" {
		t.Errorf("after rollback: status %v", st)
	}

	job := spec("batch", "hello:latest", 0)
	job.Mode = &minkepb.ServiceSpec_ReplicatedJob{ReplicatedJob: &minkepb.ReplicatedJob{TotalCompletions: 3}}
	jsvc := create(t, s, job)
	jsvc, err = update(s, jsvc, withArgs(job, "again"), false)
	if err != nil {
		t.Fatal(err)
	}
	if it := jsvc.GetJobStatus().GetJobIteration(); it != 1 || jsvc.GetUpdateStatus() != nil {
		t.Errorf("job after a change: iteration %d, update status %v; want iteration 1 and no rolling update", it, jsvc.GetUpdateStatus())
	}
}

// TestUpdateServiceRefusesBadInput: each refusal names the field, and the
// stored services are unchanged.
func TestUpdateServiceRefusesBadInput(t *testing.T) {
	s, n := newServer(t)
	web := create(t, s, spec("web", "hello:latest", 2))
	global := spec("agent", "hello:latest", 0)
	global.Mode = &minkepb.ServiceSpec_Global{Global: &minkepb.GlobalService{}}
	agent := create(t, s, global)
	before := snapshot(t, n)

	mut := func(fn func(*minkepb.ServiceSpec)) *minkepb.ServiceSpec {
		sp := spec("web", "hello:latest", 2)
		fn(sp)
		return sp
	}
	for _, tc := range []struct {
		name     string
		svc      *minkepb.Service
		spec     *minkepb.ServiceSpec
		rollback bool
		code     codes.Code
		want     []string
	}{
		{"mode change", web, mut(func(sp *minkepb.ServiceSpec) { sp.Mode = global.Mode }), false,
			codes.InvalidArgument, []string{"mode", "replicated", "cannot change"}},
		{"rollback with no previous spec", web, nil, true, codes.FailedPrecondition, []string{"web", "no previous spec"}},
		{"malformed constraint", web, mut(func(sp *minkepb.ServiceSpec) {
			sp.Task.Placement = &minkepb.Placement{Constraints: []string{"node.labels.zone=a"}}
		}), false, codes.InvalidArgument, []string{"placement.constraints", "node.labels.zone=a"}},
		{"unknown constraint key", web, mut(func(sp *minkepb.ServiceSpec) {
			sp.Task.Placement = &minkepb.Placement{Constraints: []string{"node.colour==red"}}
		}), false, codes.InvalidArgument, []string{"placement.constraints", "node.colour"}},
		{"replicated job of 0", web, mut(func(sp *minkepb.ServiceSpec) {
			sp.Mode = &minkepb.ServiceSpec_ReplicatedJob{ReplicatedJob: &minkepb.ReplicatedJob{}}
		}), false, codes.InvalidArgument, []string{"total_completions", "between 1 and"}},
		{"negative delay", web, mut(func(sp *minkepb.ServiceSpec) {
			sp.UpdateConfig = &minkepb.UpdateConfig{Delay: durationpb.New(-1)}
		}), false, codes.InvalidArgument, []string{"update_config.delay"}},
		{"negative monitor", web, mut(func(sp *minkepb.ServiceSpec) {
			sp.RollbackConfig = &minkepb.UpdateConfig{Monitor: durationpb.New(-1)}
		}), false, codes.InvalidArgument, []string{"rollback_config.monitor"}},
		{"failure ratio above 1", web, mut(func(sp *minkepb.ServiceSpec) {
			sp.UpdateConfig = &minkepb.UpdateConfig{MaxFailureRatio: 1.5}
		}), false, codes.InvalidArgument, []string{"update_config.max_failure_ratio", "1.5"}},
		{"unknown failure action", web, mut(func(sp *minkepb.ServiceSpec) {
			sp.UpdateConfig = &minkepb.UpdateConfig{FailureAction: 7}
		}), false, codes.InvalidArgument, []string{"update_config.failure_action", "7"}},
		{"rollback config cannot roll back", web, mut(func(sp *minkepb.ServiceSpec) {
			sp.RollbackConfig = &minkepb.UpdateConfig{FailureAction: minkepb.UpdateConfig_ROLLBACK}
		}), false, codes.InvalidArgument, []string{"rollback_config.failure_action"}},
		{"global to replicated", agent, spec("agent", "hello:latest", 2), false,
			codes.InvalidArgument, []string{"mode", "global", "cannot change"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := update(s, tc.svc, tc.spec, tc.rollback)
			if status.Code(err) != tc.code {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(status.Convert(err).Message(), w) {
					t.Errorf("message %q does not name %q", status.Convert(err).Message(), w)
				}
			}
			if after := snapshot(t, n); len(after) != len(before) || !proto.Equal(after[0], before[0]) || !proto.Equal(after[1], before[1]) {
				t.Errorf("stored services changed")
			}
		})
	}

	t.Run("replicated job of 0 at create", func(t *testing.T) {
		sp := spec("j", "hello:latest", 0)
		sp.Mode = &minkepb.ServiceSpec_ReplicatedJob{ReplicatedJob: &minkepb.ReplicatedJob{TotalCompletions: 0, MaxConcurrent: 1}}
		_, err := s.CreateService(context.Background(), &minkepb.CreateServiceRequest{Spec: sp})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "total_completions") {
			t.Errorf("err %v, want InvalidArgument naming total_completions", err)
		}
	})
	t.Run("rebalance a global service", func(t *testing.T) {
		_, err := s.RebalanceService(context.Background(), &minkepb.RebalanceServiceRequest{Service: "agent"})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "only replicated services") {
			t.Errorf("err %v", err)
		}
	})
}

// TestRebalanceAndHistoryLimit: a rebalance request marks the service and
// starts an update; the history limit is stored in the cluster spec.
func TestRebalanceAndHistoryLimit(t *testing.T) {
	s, n := newServer(t)
	create(t, s, spec("web", "hello:latest", 4))
	resp, err := s.RebalanceService(context.Background(), &minkepb.RebalanceServiceRequest{Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if svc := resp.GetService(); !svc.GetRebalancing() || svc.GetUpdateStatus().GetState() != minkepb.UpdateStatus_UPDATING {
		t.Errorf("after rebalance: rebalancing=%v status=%v", svc.GetRebalancing(), svc.GetUpdateStatus())
	}
	if _, err := s.RebalanceService(context.Background(), &minkepb.RebalanceServiceRequest{Service: "web"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a second rebalance during the first: %v, want FailedPrecondition", err)
	}

	storeCluster(t, n)
	if _, err := s.UpdateClusterOrchestration(context.Background(), &minkepb.UpdateClusterOrchestrationRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no limit given: %v, want InvalidArgument", err)
	}
	limit := int64(2)
	if _, err := s.UpdateClusterOrchestration(context.Background(), &minkepb.UpdateClusterOrchestrationRequest{
		Orchestration: &minkepb.OrchestrationConfig{TaskHistoryRetentionLimit: &limit}}); err != nil {
		t.Fatal(err)
	}
	_ = n.View(func(tx raftstore.ReadTx) error {
		if got := tx.Cluster().GetSpec().GetOrchestration().GetTaskHistoryRetentionLimit(); got != 2 {
			t.Errorf("stored limit %d, want 2", got)
		}
		return nil
	})
}

func storeCluster(t *testing.T, n *raftstore.Node) {
	t.Helper()
	if err := n.Update(context.Background(), func(tx *raftstore.WriteTx) error {
		if tx.Cluster() != nil {
			return nil
		}
		return tx.Create(&minkepb.Cluster{Meta: &minkepb.Meta{Id: "cluster"}, Spec: &minkepb.ClusterSpec{Name: "default"}})
	}); err != nil {
		t.Fatal(err)
	}
}

// TestServiceCounts: running/desired per mode, and completions for jobs
// of the current run only.
func TestServiceCounts(t *testing.T) {
	task := func(state minkepb.TaskState, desired minkepb.TaskState, node string, iteration uint64) *minkepb.Task {
		return &minkepb.Task{NodeId: node, DesiredState: desired, Status: &minkepb.TaskStatus{State: state}, JobIteration: iteration}
	}
	const (
		run, done, shut = minkepb.TaskState_RUNNING, minkepb.TaskState_COMPLETE, minkepb.TaskState_SHUTDOWN
	)
	job := spec("j", "hello", 0)
	job.Mode = &minkepb.ServiceSpec_ReplicatedJob{ReplicatedJob: &minkepb.ReplicatedJob{TotalCompletions: 5, MaxConcurrent: 2}}
	global := spec("g", "hello", 0)
	global.Mode = &minkepb.ServiceSpec_Global{Global: &minkepb.GlobalService{}}
	for _, tc := range []struct {
		name                                  string
		spec                                  *minkepb.ServiceSpec
		iteration                             uint64
		tasks                                 []*minkepb.Task
		running, desired, completed, totalJob uint64
	}{
		{"replicated", spec("r", "hello", 3), 0, []*minkepb.Task{task(run, run, "n1", 0), task(run, shut, "n1", 0)}, 1, 3, 0, 0},
		{"global counts its nodes", global, 0, []*minkepb.Task{task(run, run, "n1", 0), task(minkepb.TaskState_ASSIGNED, run, "n2", 0)}, 1, 2, 0, 0},
		{"replicated job", job, 1, []*minkepb.Task{task(done, done, "n1", 1), task(done, done, "n1", 1), task(done, done, "n1", 0),
			task(run, run, "n1", 1)}, 1, 2, 2, 5},
		{"replicated job nearly done", job, 0, []*minkepb.Task{task(done, done, "n1", 0), task(done, done, "n1", 0),
			task(done, done, "n1", 0), task(done, done, "n1", 0), task(run, run, "n1", 0)}, 1, 1, 4, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &minkepb.Service{Spec: tc.spec, JobStatus: &minkepb.JobStatus{JobIteration: tc.iteration}}
			c := serviceCounts(svc, tc.tasks)
			if c.GetRunning() != tc.running || c.GetDesired() != tc.desired || c.GetCompleted() != tc.completed || c.GetTotalCompletions() != tc.totalJob {
				t.Errorf("counts %v, want running %d desired %d completed %d/%d", c, tc.running, tc.desired, tc.completed, tc.totalJob)
			}
			if needsNodes(tc.spec) {
				return
			}
			// From the store's task counts alone, as ListServices does.
			counts := map[raftstore.TaskCountKey]int{}
			for _, task := range tc.tasks {
				counts[raftstore.TaskCountKey{JobIteration: task.GetJobIteration(), State: task.GetStatus().GetState(),
					Desired: task.GetDesiredState()}]++
			}
			if got := countsOf(svc, counts, nil); !proto.Equal(got, c) {
				t.Errorf("from task counts %v, from tasks %v", got, c)
			}
		})
	}
}
