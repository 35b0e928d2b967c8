package raftstore

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// ReportTaskStatus commits workers' task status reports as one
// CommandTaskStatus and returns once it is applied here. Each report is
// recorded only if its node holds the task and it moves the task's state
// forward (see StatusAdvances); the others are dropped without error. now
// stamps the recorded statuses.
//
// It is the compact form of an Update that rewrites each task: the log
// carries only the reports, and applying one copies the task shallowly,
// which at 100,000 tasks is most of the status path's cost.
func (n *Node) ReportTaskStatus(ctx context.Context, reports []*minkepb.TaskStatusReport, now time.Time) error {
	if len(reports) == 0 {
		return nil
	}
	return n.apply(ctx, CommandTaskStatus, &minkepb.TaskStatusReports{Reports: reports, TimestampUnixNano: now.UnixNano()})
}

// StatusAdvances reports whether a worker's report next may replace a
// task's current status cur: a task's observed state only moves forward,
// never leaves a final state, and an equal state is recorded only with a
// new message.
func StatusAdvances(cur, next *minkepb.TaskStatus) bool {
	switch {
	case next == nil:
		return false
	case cur.GetState() >= minkepb.TaskState_COMPLETE, next.GetState() < cur.GetState():
		return false
	case next.GetState() == cur.GetState() && next.GetMessage() == cur.GetMessage():
		return false
	}
	return true
}

// applyStatusReports applies a CommandTaskStatus at Raft index. It is
// deterministic: the state, the reports and the index decide everything.
// It takes cmd over: the statuses it records are stored as they are.
func (s *MemoryStore) applyStatusReports(index uint64, cmd *minkepb.TaskStatusReports) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	txn, tasks := s.writeTxn(len(cmd.GetReports()))
	stamp := timestamppb.New(time.Unix(0, cmd.GetTimestampUnixNano()).UTC())
	var events []Event
	deltas := countDeltas{}
	for _, r := range cmd.GetReports() {
		cur, err := tasks.get(r.GetTaskId())
		if err != nil {
			txn.Abort()
			return err
		}
		if cur == nil || cur.GetNodeId() != r.GetNodeId() || !StatusAdvances(cur.GetStatus(), r.GetStatus()) {
			continue
		}
		t := restamped(cur, index, stamp)
		st := r.GetStatus() // cmd is this apply's own: stored as decoded, not copied
		st.Timestamp = stamp
		t.Status = st
		if err := putTask(txn, tasks, cur, t); err != nil {
			txn.Abort()
			return err
		}
		deltas.task(cur, t)
		events = append(events, Event{Kind: EventUpdate, Object: t, Index: index})
	}
	return s.commit(txn, index, events, deltas)
}

// shallowClone copies m's fields into a new message, sharing its
// sub-messages, lists and maps: enough for a stored object whose changed
// sub-messages are replaced, never edited (stored objects are immutable).
// Unlike a struct copy it keeps fields added to the message later.
func shallowClone[M proto.Message](m M) M {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
	return dst.Interface().(M)
}
