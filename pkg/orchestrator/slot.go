package orchestrator

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// slotRef names a slot: a replicated service's slot number, or the node of
// a global service's task.
type slotRef struct {
	slot uint64
	node string
}

// slotRules are what a service's mode changes in how one slot is kept.
type slotRules struct {
	// place allows a new task in the slot; false for a global service on
	// a paused or ineligible node, or a job at max concurrency.
	place bool
	// evict shuts the slot's live tasks down: a global service's node no
	// longer meets its constraints, or left the worker role.
	evict bool
	// job: the slot is done once a task completed; completed tasks are
	// never restarted, whatever the restart condition.
	job bool
	// pin: a global service's node lacks room for a new task, which is
	// created PENDING and pinned to the node (see pinned).
	pin bool
}

// reconcileSlot keeps at most one live task in a slot. tasks are the
// slot's, oldest first. It returns when the slot must be looked at again
// for a delayed restart (zero: no need).
//
// Two live tasks in a slot are a start-first replacement (rolling update
// or rebalance): the older one is retired once the newest is Ready, and
// kept while the newest starts, so the slot never drops below one running
// task.
func (r *Replicated) reconcileSlot(tx *raftstore.WriteTx, svc *minkepb.Service, ref slotRef, tasks []*minkepb.Task,
	now time.Time, images map[string]string, rules slotRules) (time.Time, error) {
	var alive []*minkepb.Task
	replaceNow := false
	for _, t := range tasks {
		if !live(t) {
			continue
		}
		node := tx.Node(t.GetNodeId())
		switch {
		case t.GetNodeId() != "" && (node == nil || node.GetStatus().GetState() == minkepb.NodeStatus_DOWN):
			// Its node is gone: the task is lost, replace it at once.
			o := withDesired(t, minkepb.TaskState_SHUTDOWN)
			o.Status = &minkepb.TaskStatus{Timestamp: timestamppb.New(now), State: minkepb.TaskState_ORPHANED,
				Message: "node is down", Err: "task lost: node " + t.GetNodeId() + " is down"}
			if err := tx.Update(o); err != nil {
				return time.Time{}, err
			}
			replaceNow = true
		case node.GetSpec().GetAvailability() == minkepb.NodeSpec_DRAIN:
			// The operator drained its node: stop it there and start a
			// replacement elsewhere at once.
			if err := tx.Update(withDesired(t, minkepb.TaskState_SHUTDOWN)); err != nil {
				return time.Time{}, err
			}
			replaceNow = true
		case rules.job && t.GetStatus().GetState() == minkepb.TaskState_COMPLETE:
			// A job's task that completed stays as the record of it.
			if err := tx.Update(withDesired(t, minkepb.TaskState_COMPLETE)); err != nil {
				return time.Time{}, err
			}
		case IsTerminal(t.GetStatus().GetState()):
			if err := tx.Update(withDesired(t, minkepb.TaskState_SHUTDOWN)); err != nil {
				return time.Time{}, err
			}
		case rules.evict:
			// A global service's node is no longer eligible (constraint,
			// availability): its task goes and is not replaced.
			if err := tx.Update(withDesired(t, minkepb.TaskState_SHUTDOWN)); err != nil {
				return time.Time{}, err
			}
		default:
			alive = append(alive, t)
		}
	}
	if n := len(alive); n > 1 && Ready(alive[n-1]) {
		for _, t := range alive[:n-1] {
			if err := r.retire(tx, t, false); err != nil {
				return time.Time{}, err
			}
		}
		alive = alive[n-1:]
	}
	if len(alive) > 0 || !rules.place {
		return time.Time{}, nil
	}
	var last *minkepb.Task
	if len(tasks) > 0 {
		last = tx.Task(tasks[len(tasks)-1].GetMeta().GetId())
	}
	if rules.job {
		for _, t := range tasks {
			if t.GetStatus().GetState() == minkepb.TaskState_COMPLETE {
				return time.Time{}, nil
			}
		}
	}
	if last != nil && last.GetReplaceWhenStopped() && !replaceNow {
		// The updater stopped it to replace it (stop-first): the
		// replacement starts once it has stopped.
		if !removable(last, tx.Node(last.GetNodeId())) {
			return time.Time{}, nil
		}
		replaceNow = true
	}
	policy := svc.GetSpec().GetTask().GetRestart()
	at, ok := restartAt(policy, last, replaceNow, now)
	if !ok {
		return time.Time{}, nil
	}
	if at.After(now) {
		return at, nil
	}
	t := slotTask(svc, ref, now, images)
	if rules.pin {
		t = pinned(t)
	}
	if last != nil && !replaceNow {
		countRestart(t, last, policy, now)
	}
	return time.Time{}, createTask(tx, t)
}
