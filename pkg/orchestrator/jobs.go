package orchestrator

import (
	"sort"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Jobs run their tasks to completion. A slot whose task completed is done
// for the job's iteration and never restarted; a failed task is replaced
// under the restart policy (whose condition "any" acts as "on-failure" for
// jobs, as in swarm). Changing a job's spec starts a new iteration
// (JobStatus.job_iteration): the earlier iteration's live tasks are shut
// down and its completions no longer count.

// JobMaxConcurrent is a replicated job's effective concurrency.
func JobMaxConcurrent(j *minkepb.ReplicatedJob) uint64 {
	if m := j.GetMaxConcurrent(); m > 0 && m < j.GetTotalCompletions() {
		return m
	}
	return j.GetTotalCompletions()
}

// reconcileReplicatedJob runs slots 1..total_completions, at most
// max_concurrent at a time, lowest slots first.
func (r *Replicated) reconcileReplicatedJob(tx *raftstore.WriteTx, svc *minkepb.Service, now time.Time, images map[string]string) (time.Time, error) {
	job := svc.GetSpec().GetReplicatedJob()
	total := job.GetTotalCompletions()
	iteration := svc.GetJobStatus().GetJobIteration()
	bySlot := map[uint64][]*minkepb.Task{}
	var running uint64
	for _, t := range tx.TasksByService(svc.GetMeta().GetId()) {
		if t.GetJobIteration() != iteration {
			if err := r.retireOldIteration(tx, t); err != nil {
				return time.Time{}, err
			}
			continue
		}
		bySlot[t.GetSlot()] = append(bySlot[t.GetSlot()], t)
		if live(t) && !IsTerminal(t.GetStatus().GetState()) {
			running++
		}
	}
	var budget uint64
	if m := JobMaxConcurrent(job); m > running {
		budget = m - running
	}
	slots := make([]uint64, 0, len(bySlot))
	for s := range bySlot {
		slots = append(slots, s)
	}
	for s := uint64(1); s <= total; s++ {
		if _, ok := bySlot[s]; !ok {
			slots = append(slots, s)
		}
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i] < slots[j] })
	var wake time.Time
	for _, slot := range slots {
		tasks := bySlot[slot]
		byCreation(tasks)
		if slot > total || slot == 0 {
			for _, t := range tasks {
				if err := r.retire(tx, t, false); err != nil {
					return wake, err
				}
			}
			continue
		}
		if slotCompleted(tasks) {
			// Done for this run: its completed task is kept as the record
			// (desired COMPLETE), anything else in the slot stops.
			for _, t := range tasks {
				switch {
				case !live(t):
				case t.GetStatus().GetState() == minkepb.TaskState_COMPLETE:
					if err := tx.Update(withDesired(t, minkepb.TaskState_COMPLETE)); err != nil {
						return wake, err
					}
				default:
					if err := r.retire(tx, t, false); err != nil {
						return wake, err
					}
				}
			}
			continue
		}
		rules := slotRules{job: true}
		if !slotRunning(tasks) && budget > 0 {
			rules.place = true
			budget--
		} else if slotRunning(tasks) {
			rules.place = true // a replacement of its own task keeps its seat
		}
		w, err := r.reconcileSlot(tx, svc, slotRef{slot: slot}, tasks, now, images, rules)
		if err != nil {
			return wake, err
		}
		wake = earlier(wake, w)
	}
	return wake, nil
}

// reconcileGlobalJob runs one task to completion on every eligible node.
func (r *Replicated) reconcileGlobalJob(tx *raftstore.WriteTx, svc *minkepb.Service, now time.Time, images map[string]string) (time.Time, error) {
	return r.reconcilePerNode(tx, svc, now, images, true)
}

func slotCompleted(tasks []*minkepb.Task) bool {
	for _, t := range tasks {
		if t.GetStatus().GetState() == minkepb.TaskState_COMPLETE {
			return true
		}
	}
	return false
}

// slotRunning: the slot holds a live task that has not ended.
func slotRunning(tasks []*minkepb.Task) bool {
	for _, t := range tasks {
		if live(t) && !IsTerminal(t.GetStatus().GetState()) {
			return true
		}
	}
	return false
}
