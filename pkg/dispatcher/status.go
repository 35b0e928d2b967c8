package dispatcher

import (
	"context"
	"log/slog"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// statusBatcher group-commits task status reports: while commands are in
// flight, reports queue up, and the next command carries all of them.
// Several commands are in flight at once (committers), so that Raft's own
// group commit stores them with one log write; they never touch the same
// task in practice, as a node sends its next report only after the last
// was answered, and a conflict is retried by the store anyway.
type statusBatcher struct {
	store Store
	log   *slog.Logger
	reqs  chan *statusReq
}

type statusReq struct {
	ctx     context.Context
	nodeID  string
	updates []*minkepb.TaskStatusUpdate
	done    chan error
}

// maxBatch bounds how many reports share one command; committers is how
// many commands are in flight.
const (
	maxBatch   = 512
	committers = 4
)

func newStatusBatcher(store Store, log *slog.Logger) *statusBatcher {
	return &statusBatcher{store: store, log: log, reqs: make(chan *statusReq, maxBatch)}
}

func (b *statusBatcher) submit(ctx context.Context, nodeID string, updates []*minkepb.TaskStatusUpdate) error {
	r := &statusReq{ctx: ctx, nodeID: nodeID, updates: updates, done: make(chan error, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *statusBatcher) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range committers {
		wg.Add(1)
		go func() { defer wg.Done(); b.commitLoop(ctx) }()
	}
	wg.Wait()
}

func (b *statusBatcher) commitLoop(ctx context.Context) {
	for {
		var batch []*statusReq
		select {
		case <-ctx.Done():
			return
		case r := <-b.reqs:
			batch = append(batch, r)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		// A report whose caller gave up is not committed: the node sends
		// it again, and committing it now would only delay the others.
		live := batch[:0]
		for _, r := range batch {
			if r.ctx.Err() != nil {
				r.done <- r.ctx.Err()
				continue
			}
			live = append(live, r)
		}
		batch = live
		if len(batch) == 0 {
			continue
		}
		// Status times are the manager's: restart delays must not depend on
		// workers' clocks.
		now := timestamppb.Now()
		err := b.store.Update(ctx, func(tx *raftstore.WriteTx) error {
			for _, r := range batch {
				for _, u := range r.updates {
					if err := applyStatus(tx, r.nodeID, u, now); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.log.Warn("committing task status failed", "reports", len(batch), "err", err)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

// applyStatus records one report. Reports for unknown tasks, for tasks that
// another node holds, or that would move a task backwards are dropped: a
// task's observed state only moves forward and never leaves a final state.
func applyStatus(tx *raftstore.WriteTx, nodeID string, u *minkepb.TaskStatusUpdate, now *timestamppb.Timestamp) error {
	t := tx.Task(u.GetTaskId())
	if t == nil || t.GetNodeId() != nodeID || u.GetStatus() == nil {
		return nil
	}
	cur := t.GetStatus()
	next := u.GetStatus()
	if cur.GetState() >= minkepb.TaskState_COMPLETE || next.GetState() < cur.GetState() || (next.GetState() == cur.GetState() && next.GetMessage() == cur.GetMessage()) {
		return nil
	}
	t = proto.Clone(t).(*minkepb.Task)
	t.Status = proto.Clone(next).(*minkepb.TaskStatus)
	t.Status.Timestamp = now
	return tx.Update(t)
}
