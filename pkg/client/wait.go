package client

import (
	"context"
	"fmt"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// pollInterval is how often WaitForService lists the service's tasks.
const pollInterval = 150 * time.Millisecond

// TaskFailedError reports a task that failed or was rejected while
// WaitForService was waiting. Task is the task as last listed.
type TaskFailedError struct {
	Task *minkepb.Task
}

func (e *TaskFailedError) Error() string {
	t := e.Task
	cause := t.GetStatus().GetErr()
	if cause == "" {
		cause = t.GetStatus().GetMessage()
	}
	if cause == "" {
		cause = "no error reported"
	}
	return fmt.Sprintf("task %s (%s) %s: %s", TaskName(t), shortID(t.GetMeta().GetId()),
		stateVerb(t.GetStatus().GetState()), cause)
}

func stateVerb(s minkepb.TaskState) string {
	if s == minkepb.TaskState_REJECTED {
		return "was rejected"
	}
	return "failed"
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// CheckProgress is WaitForService's decision over one task listing. A slot
// 1..desired counts as running when one of its tasks is RUNNING with desired
// state RUNNING; done is true once all desired slots run. A task created at
// or after since that is FAILED or REJECTED ends the wait with a
// *TaskFailedError; older failures are history from before the change being
// waited for. A zero since counts every failure.
func CheckProgress(desired uint64, since time.Time, tasks []*minkepb.Task) (running uint64, done bool, err error) {
	slots := make(map[uint64]bool)
	for _, t := range tasks {
		st := t.GetStatus().GetState()
		switch {
		case st == minkepb.TaskState_RUNNING && t.GetDesiredState() == minkepb.TaskState_RUNNING:
			if t.GetSlot() >= 1 && t.GetSlot() <= desired {
				slots[t.GetSlot()] = true
			}
		case st == minkepb.TaskState_FAILED || st == minkepb.TaskState_REJECTED:
			created := t.GetMeta().GetCreatedAt()
			if since.IsZero() || created == nil || !created.AsTime().Before(since) {
				return uint64(len(slots)), false, &TaskFailedError{Task: t}
			}
		}
	}
	running = uint64(len(slots))
	return running, running == desired, nil
}

// WaitForService polls the tasks of service serviceID until every desired
// slot has a running task (nil), a task started for the current spec fails
// or is rejected (*TaskFailedError), or ctx is done (ctx.Err()). progress,
// if not nil, is called after every poll with the current tasks (those with
// desired state RUNNING); it may be called with unchanged values.
func (c *Client) WaitForService(ctx context.Context, serviceID string, progress func(running, desired uint64, tasks []*minkepb.Task)) error {
	svc, err := c.ResolveService(ctx, serviceID)
	if err != nil {
		return err
	}
	desired := desiredReplicas(svc)
	var since time.Time
	if ts := svc.GetMeta().GetUpdatedAt(); ts != nil {
		since = ts.AsTime()
	} else if ts := svc.GetMeta().GetCreatedAt(); ts != nil {
		since = ts.AsTime()
	}
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		tasks, err := c.ListTasks(ctx, svc.GetMeta().GetId())
		if err != nil {
			return err
		}
		running, done, failed := CheckProgress(desired, since, tasks)
		if progress != nil {
			progress(running, desired, CurrentTasks(tasks))
		}
		if failed != nil || done {
			return failed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// CurrentTasks returns the tasks the managers want running, dropping
// history (tasks being shut down or already replaced).
func CurrentTasks(tasks []*minkepb.Task) []*minkepb.Task {
	var out []*minkepb.Task
	for _, t := range tasks {
		if t.GetDesiredState() <= minkepb.TaskState_RUNNING {
			out = append(out, t)
		}
	}
	return out
}
