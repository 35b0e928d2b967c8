package controlapi

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/orchestrator"
	"github.com/minke-io/minke/pkg/raftstore"
)

// UpdateService replaces a service's spec if the caller read the current
// version, or with rollback returns it to its previous spec. A change of
// the task spec starts a rolling update (update_status UPDATING), which the
// orchestrator's Updater carries out; a job's change starts a new run of
// the job. The mode of a service cannot change.
func (s *Server) UpdateService(ctx context.Context, req *minkepb.UpdateServiceRequest) (*minkepb.UpdateServiceResponse, error) {
	var spec *minkepb.ServiceSpec
	if !req.GetRollback() {
		spec = proto.Clone(req.GetSpec()).(*minkepb.ServiceSpec)
		if err := validateSpec(spec); err != nil {
			return nil, invalid("%v", err)
		}
	}
	now := time.Now()
	var id string
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		cur, err := tx.FindService(req.GetServiceId())
		if err != nil {
			return err
		}
		id = cur.GetMeta().GetId()
		if cur.GetMeta().GetVersion() != req.GetServiceVersion() {
			return status.Errorf(codes.FailedPrecondition,
				"service %s changed since it was read (version %d, request has %d): read it again and retry",
				cur.GetSpec().GetName(), cur.GetMeta().GetVersion(), req.GetServiceVersion())
		}
		if err := resolveNetworks(tx.ReadTx, spec); err != nil { // names to IDs before comparing specs
			return err
		}
		next, err := nextService(cur, spec, now)
		if err != nil {
			return err
		}
		if other := tx.ServiceByName(next.GetSpec().GetName()); other != nil && other.GetMeta().GetId() != id {
			return fmt.Errorf("%w: a service named %q already exists", raftstore.ErrNameConflict, next.GetSpec().GetName())
		}
		if err := allocateEndpoint(tx, next, cur); err != nil {
			return err
		}
		return tx.Update(next)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	var stored *minkepb.Service
	_ = s.store.View(func(tx raftstore.ReadTx) error { stored = tx.Service(id); return nil })
	if req.GetRollback() {
		s.log.Info("service rollback requested", "service_id", id)
	}
	return &minkepb.UpdateServiceResponse{Service: stored}, nil
}

// ModeName names a spec's mode as the CLI's --mode does.
func ModeName(spec *minkepb.ServiceSpec) string {
	switch spec.GetMode().(type) {
	case *minkepb.ServiceSpec_Replicated:
		return "replicated"
	case *minkepb.ServiceSpec_Global:
		return "global"
	case *minkepb.ServiceSpec_ReplicatedJob:
		return "replicated-job"
	case *minkepb.ServiceSpec_GlobalJob:
		return "global-job"
	}
	return "unknown"
}

// nextService is cur after an update to spec (nil: a rollback). It never
// modifies cur; errors are gRPC statuses that name the field.
func nextService(cur *minkepb.Service, spec *minkepb.ServiceSpec, now time.Time) (*minkepb.Service, error) {
	next := proto.Clone(cur).(*minkepb.Service)
	name := cur.GetSpec().GetName()
	if spec == nil {
		if cur.GetPreviousSpec() == nil {
			return nil, status.Errorf(codes.FailedPrecondition,
				"service %s has no previous spec to roll back to: it has not been updated since it was created", name)
		}
		next.Spec, next.PreviousSpec = cur.GetPreviousSpec(), cur.GetSpec()
		next.Spec.Name = name
		next.Rebalancing = false
		if orchestrator.IsJob(next.GetSpec()) {
			nextIteration(next, now)
		} else {
			next.UpdateStatus = &minkepb.UpdateStatus{State: minkepb.UpdateStatus_ROLLBACK_STARTED,
				StartedAt: timestamppb.New(now), Message: "manually requested rollback"}
		}
		return next, nil
	}
	if spec.GetName() == "" {
		spec.Name = name
	}
	if from, to := ModeName(cur.GetSpec()), ModeName(spec); from != to {
		return nil, status.Errorf(codes.InvalidArgument,
			"invalid mode %s: service %s is %s and a service's mode cannot change; remove it and create it again", to, name, from)
	}
	if proto.Equal(spec, cur.GetSpec()) {
		return next, nil
	}
	next.PreviousSpec, next.Spec = cur.GetSpec(), spec
	switch {
	case orchestrator.IsJob(spec):
		nextIteration(next, now)
	case !proto.Equal(spec.GetTask(), cur.GetSpec().GetTask()):
		next.Rebalancing = false
		next.UpdateStatus = &minkepb.UpdateStatus{State: minkepb.UpdateStatus_UPDATING,
			StartedAt: timestamppb.New(now), Message: "update in progress"}
	}
	return next, nil
}

// nextIteration starts a new run of a job.
func nextIteration(svc *minkepb.Service, now time.Time) {
	svc.JobStatus = &minkepb.JobStatus{JobIteration: svc.GetJobStatus().GetJobIteration() + 1,
		LastExecution: timestamppb.New(now)}
}

// serviceCounts is a service's line in `service ls`: running and desired
// tasks, and for jobs how many of the current run completed.
func serviceCounts(svc *minkepb.Service, tasks []*minkepb.Task) *minkepb.ReplicaCounts {
	counts := map[raftstore.TaskCountKey]int{}
	nodes := map[string]bool{}
	iteration := svc.GetJobStatus().GetJobIteration()
	job := orchestrator.IsJob(svc.GetSpec())
	for _, t := range tasks {
		k := raftstore.TaskCountKey{JobIteration: t.GetJobIteration(), State: t.GetStatus().GetState(), Desired: t.GetDesiredState()}
		counts[k]++
		if job && k.JobIteration != iteration {
			continue
		}
		if wanted(k) || (job && k.State == minkepb.TaskState_COMPLETE) {
			nodes[t.GetNodeId()] = true
		}
	}
	return countsOf(svc, counts, nodes)
}

// needsNodes reports whether a service's counts depend on which nodes its
// tasks are on (global modes: one task per node), which the store's task
// counts do not tell.
func needsNodes(spec *minkepb.ServiceSpec) bool {
	switch spec.GetMode().(type) {
	case *minkepb.ServiceSpec_Global, *minkepb.ServiceSpec_GlobalJob:
		return true
	}
	return false
}

func wanted(k raftstore.TaskCountKey) bool {
	return k.Desired == minkepb.TaskState_RUNNING && !orchestrator.IsTerminal(k.State)
}

// countsOf is serviceCounts from the service's task counts (see
// raftstore.ReadTx.TaskCounts) and, for global modes, the nodes holding its
// wanted (or, for jobs, completed) tasks of the current run.
func countsOf(svc *minkepb.Service, counts map[raftstore.TaskCountKey]int, nodes map[string]bool) *minkepb.ReplicaCounts {
	c := &minkepb.ReplicaCounts{}
	iteration := svc.GetJobStatus().GetJobIteration()
	job := orchestrator.IsJob(svc.GetSpec())
	for k, n := range counts {
		if job && k.JobIteration != iteration {
			continue
		}
		if wanted(k) && k.State == minkepb.TaskState_RUNNING {
			c.Running += uint64(n)
		}
		if wanted(k) && k.State >= minkepb.TaskState_ASSIGNED && k.State <= minkepb.TaskState_RUNNING {
			c.Assigned += uint64(n)
		}
		if job && k.State == minkepb.TaskState_COMPLETE {
			c.Completed += uint64(n)
		}
	}
	switch m := svc.GetSpec().GetMode().(type) {
	case *minkepb.ServiceSpec_Replicated:
		c.Desired = m.Replicated.GetReplicas()
	case *minkepb.ServiceSpec_Global:
		c.Desired = uint64(len(nodes))
	case *minkepb.ServiceSpec_ReplicatedJob:
		c.TotalCompletions = m.ReplicatedJob.GetTotalCompletions()
		if left := c.TotalCompletions - min(c.Completed, c.TotalCompletions); left > 0 {
			c.Desired = min(orchestrator.JobMaxConcurrent(m.ReplicatedJob), left)
		}
	case *minkepb.ServiceSpec_GlobalJob:
		c.TotalCompletions = uint64(len(nodes))
		c.Desired = c.TotalCompletions - min(c.Completed, c.TotalCompletions)
	}
	return c
}

// RebalanceService asks the Updater to spread a replicated service's tasks
// evenly again over the eligible nodes.
func (s *Server) RebalanceService(ctx context.Context, req *minkepb.RebalanceServiceRequest) (*minkepb.RebalanceServiceResponse, error) {
	now := time.Now()
	var id string
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		cur, err := tx.FindService(req.GetService())
		if err != nil {
			return err
		}
		id = cur.GetMeta().GetId()
		if _, ok := cur.GetSpec().GetMode().(*minkepb.ServiceSpec_Replicated); !ok {
			return status.Errorf(codes.InvalidArgument,
				"service %s is %s: only replicated services can be rebalanced (global services run one task per node already)",
				cur.GetSpec().GetName(), ModeName(cur.GetSpec()))
		}
		if st := cur.GetUpdateStatus().GetState(); st == minkepb.UpdateStatus_UPDATING || st == minkepb.UpdateStatus_ROLLBACK_STARTED {
			return status.Errorf(codes.FailedPrecondition,
				"service %s is being updated (%s): rebalance it once the update is done", cur.GetSpec().GetName(), cur.GetUpdateStatus().GetMessage())
		}
		next := proto.Clone(cur).(*minkepb.Service)
		next.Rebalancing = true
		next.UpdateStatus = &minkepb.UpdateStatus{State: minkepb.UpdateStatus_UPDATING,
			StartedAt: timestamppb.New(now), Message: "rebalancing"}
		return tx.Update(next)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	var stored *minkepb.Service
	_ = s.store.View(func(tx raftstore.ReadTx) error { stored = tx.Service(id); return nil })
	s.log.Info("service rebalance requested", "service_id", id)
	return &minkepb.RebalanceServiceResponse{Service: stored}, nil
}

// UpdateClusterOrchestration changes the cluster-wide orchestration
// settings; unset fields keep their value.
func (s *Server) UpdateClusterOrchestration(ctx context.Context, req *minkepb.UpdateClusterOrchestrationRequest) (*minkepb.UpdateClusterOrchestrationResponse, error) {
	o := req.GetOrchestration()
	if o == nil || o.TaskHistoryRetentionLimit == nil {
		return nil, invalid("orchestration.task_history_retention_limit is required (a number of ended tasks per slot; negative keeps all)")
	}
	var out *minkepb.Cluster
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		c := tx.Cluster()
		if c == nil {
			return status.Error(codes.Unavailable, "cluster is not initialised yet")
		}
		c = proto.Clone(c).(*minkepb.Cluster)
		if c.Spec == nil {
			c.Spec = &minkepb.ClusterSpec{}
		}
		if c.Spec.Orchestration == nil {
			c.Spec.Orchestration = &minkepb.OrchestrationConfig{}
		}
		limit := o.GetTaskHistoryRetentionLimit()
		c.Spec.Orchestration.TaskHistoryRetentionLimit = &limit
		out = c
		return tx.Update(c)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &minkepb.UpdateClusterOrchestrationResponse{Cluster: out}, nil
}

func (f *Forwarder) RebalanceService(ctx context.Context, r *minkepb.RebalanceServiceRequest) (*minkepb.RebalanceServiceResponse, error) {
	return unary(f, ctx, false, r, f.local.RebalanceService, minkepb.ControlClient.RebalanceService)
}

func (f *Forwarder) UpdateClusterOrchestration(ctx context.Context, r *minkepb.UpdateClusterOrchestrationRequest) (*minkepb.UpdateClusterOrchestrationResponse, error) {
	return unary(f, ctx, false, r, f.local.UpdateClusterOrchestration, minkepb.ControlClient.UpdateClusterOrchestration)
}
