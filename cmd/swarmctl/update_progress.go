package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// followUpdate prints an update's progress until it completes (nil),
// pauses or rolls back (an error), or ctx ends.
func followUpdate(ctx context.Context, api controlAPI, w io.Writer, svc *minkepb.Service) error {
	name := svc.GetSpec().GetName()
	st := svc.GetUpdateStatus().GetState()
	if st != minkepb.UpdateStatus_UPDATING && st != minkepb.UpdateStatus_ROLLBACK_STARTED {
		if _, ok := svc.GetSpec().GetMode().(*minkepb.ServiceSpec_Replicated); ok {
			return waitAndReport(ctx, api, w, svc) // a scale or config-only change
		}
		return nil
	}
	var last string
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		cur, err := api.ResolveService(ctx, svc.GetMeta().GetId())
		if err != nil {
			return err
		}
		us := cur.GetUpdateStatus()
		tasks, err := api.ListTasks(ctx, cur.GetMeta().GetId())
		if err != nil {
			return err
		}
		done, total := updatedTasks(cur, tasks)
		line := fmt.Sprintf("%s: %s: %d/%d tasks on the current spec: %s", name, updateStateName(us.GetState()), done, total, us.GetMessage())
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		switch us.GetState() {
		case minkepb.UpdateStatus_COMPLETED, minkepb.UpdateStatus_ROLLBACK_COMPLETED:
			if us.GetState() == minkepb.UpdateStatus_ROLLBACK_COMPLETED && st == minkepb.UpdateStatus_UPDATING {
				return fmt.Errorf("service %s: update rolled back: %s", name, us.GetMessage())
			}
			return nil
		case minkepb.UpdateStatus_PAUSED, minkepb.UpdateStatus_ROLLBACK_PAUSED:
			return fmt.Errorf("service %s: %s", name, us.GetMessage())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following: the update of %s carries on in the background", name)
		case <-ticker.C:
		}
	}
}

// waitForMode follows a new global service or job until its tasks run
// (global) or the job completes, printing the counts as `service ls` shows
// them; a failed task ends a global service's wait with an error, while a
// job's failed tasks are retried by its restart policy.
func waitForMode(ctx context.Context, api controlAPI, w io.Writer, svc *minkepb.Service) error {
	name := svc.GetSpec().GetName()
	id := svc.GetMeta().GetId()
	var last string
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		services, counts, err := api.ListServices(ctx)
		if err != nil {
			return err
		}
		c := counts[id]
		var cur *minkepb.Service
		for _, s := range services {
			if s.GetMeta().GetId() == id {
				cur = s
			}
		}
		if cur == nil {
			return fmt.Errorf("service %s was removed", name)
		}
		line := name + ": " + replicasColumn(cur, c)
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		switch cur.GetSpec().GetMode().(type) {
		case *minkepb.ServiceSpec_Global:
			if c.GetDesired() > 0 && c.GetRunning() == c.GetDesired() {
				fmt.Fprintf(w, "%s: converged\n", name)
				return nil
			}
		default:
			if c.GetTotalCompletions() > 0 && c.GetCompleted() >= c.GetTotalCompletions() {
				fmt.Fprintf(w, "%s: job complete\n", name)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting: service %s carries on in the background", name)
		case <-ticker.C:
		}
	}
}

// updatedTasks counts a service's running tasks that run its current spec,
// out of the tasks it should run (replicas, or one per node running one
// for global services).
func updatedTasks(svc *minkepb.Service, tasks []*minkepb.Task) (done, total int) {
	nodes := map[string]bool{}
	for _, t := range tasks {
		if t.GetDesiredState() != minkepb.TaskState_RUNNING {
			continue
		}
		nodes[t.GetNodeId()] = true
		if t.GetStatus().GetState() == minkepb.TaskState_RUNNING && proto.Equal(t.GetSpec(), svc.GetSpec().GetTask()) {
			done++
		}
	}
	total = len(nodes)
	if r := svc.GetSpec().GetReplicated(); r != nil {
		total = int(r.GetReplicas())
	}
	return min(done, total), total
}

// writeJobProgress ends `service ps` of a job with its completions, as
// `service ls` counts them ("batch: 3/5 completed").
func writeJobProgress(ctx context.Context, api controlAPI, w io.Writer, svc *minkepb.Service) error {
	switch svc.GetSpec().GetMode().(type) {
	case *minkepb.ServiceSpec_ReplicatedJob, *minkepb.ServiceSpec_GlobalJob:
	default:
		return nil
	}
	_, counts, err := api.ListServices(ctx)
	if err != nil {
		return err
	}
	c := counts[svc.GetMeta().GetId()]
	_, err = fmt.Fprintf(w, "%s: %d/%d completed\n", svc.GetSpec().GetName(), c.GetCompleted(), c.GetTotalCompletions())
	return err
}
