package raftstore

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Assign commits the scheduler's assignments as one CommandAssign and
// returns once it is applied here. Each assignment is recorded only if it
// is still valid when applied (see Assignable); the others are dropped
// without error. now stamps the ASSIGNED statuses, which carry message.
//
// It is the compact form of an Update that rewrites each task with its
// node: the log carries only the IDs (about 60 bytes instead of the whole
// task, spec included), which at 100,000 tasks is most of the bytes the
// scheduler writes.
func (n *Node) Assign(ctx context.Context, as []*minkepb.TaskAssignment, message string, now time.Time) error {
	if len(as) == 0 {
		return nil
	}
	return n.apply(ctx, CommandAssign, &minkepb.TaskAssignments{Assignments: as, TimestampUnixNano: now.UnixNano(), Message: message})
}

// Assignable reports whether task t may be assigned to node n now: t is
// PENDING, unassigned and wanted running (and, if pinned to a node, pinned
// to n), and n is READY.
func Assignable(t *minkepb.Task, n *minkepb.Node) bool {
	return t != nil && n != nil && t.GetNodeId() == "" && t.GetStatus().GetState() == minkepb.TaskState_PENDING &&
		t.GetDesiredState() == minkepb.TaskState_RUNNING &&
		(t.GetPinnedNodeId() == "" || t.GetPinnedNodeId() == n.GetMeta().GetId()) &&
		n.GetStatus().GetState() == minkepb.NodeStatus_READY
}

// applyAssignments applies a CommandAssign at Raft index. It is
// deterministic: the state, the assignments and the index decide
// everything.
func (s *MemoryStore) applyAssignments(index uint64, cmd *minkepb.TaskAssignments) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	txn, tasks := s.writeTxn(len(cmd.GetAssignments()))
	stamp := timestamppb.New(time.Unix(0, cmd.GetTimestampUnixNano()).UTC())
	var events []Event
	deltas := countDeltas{}
	for _, a := range cmd.GetAssignments() {
		cur, err := tasks.get(a.GetTaskId())
		if err != nil {
			txn.Abort()
			return err
		}
		n, err := txn.First(tableNodes, indexID, a.GetNodeId())
		if err != nil {
			txn.Abort()
			return fmt.Errorf("raftstore: lookup node %s: %w", a.GetNodeId(), err)
		}
		node, _ := n.(*minkepb.Node)
		if !Assignable(cur, node) {
			continue
		}
		t := restamped(cur, index, stamp)
		t.NodeId = a.GetNodeId()
		t.Status = &minkepb.TaskStatus{Timestamp: stamp, State: minkepb.TaskState_ASSIGNED, Message: cmd.GetMessage()}
		if err := putTask(txn, tasks, cur, t); err != nil {
			txn.Abort()
			return err
		}
		deltas.task(cur, t)
		events = append(events, Event{Kind: EventUpdate, Object: t, Index: index})
	}
	return s.commit(txn, index, events, deltas)
}
