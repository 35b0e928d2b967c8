package dispatcher

import (
	"context"
	"log/slog"
	"sync"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// statusBatcher group-commits task status reports: while a command is in
// flight, reports queue up, and the next command carries all of them.
//
// One command at a time (committers): status reports are the largest
// share of the Raft FSM's work at scale, and the FSM applies commands one
// by one, so each status command in the log delays the creates,
// assignments and task creations behind it. With four in flight,
// bench-scheduler's status commands took half the FSM's time while tasks
// were still being placed; with one, reports wait and merge (about 300
// commands for 100,000 reports instead of 1,000) and placing goes first.
type statusBatcher struct {
	store   Store
	log     *slog.Logger
	reqs    chan *statusReq
	metrics *metrics
}

type statusReq struct {
	ctx     context.Context
	nodeID  string
	updates []*minkepb.TaskStatusUpdate
	done    chan error
}

// maxBatch bounds how many reports share one command (about 4096 × 100
// bytes in the log); committers is how many commands are in flight.
const (
	maxBatch   = 4096
	committers = 1
)

func newStatusBatcher(store Store, log *slog.Logger, m *metrics) *statusBatcher {
	return &statusBatcher{store: store, log: log, reqs: make(chan *statusReq, maxBatch), metrics: m}
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
		reports := reportsOf(b.store, batch)
		err := b.store.ReportTaskStatus(ctx, reports, time.Now())
		if err == nil && len(reports) > 0 {
			b.metrics.statusCommits.Inc()
		}
		if err != nil {
			b.log.Warn("committing task status failed", "reports", len(batch), "err", err)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

// reportsOf turns requests into the reports worth committing: those the
// store would record now (see raftstore.StatusAdvances). Apply checks
// again, so one that a concurrent command made stale is dropped there.
func reportsOf(store Store, batch []*statusReq) []*minkepb.TaskStatusReport {
	var out []*minkepb.TaskStatusReport
	_ = store.View(func(tx raftstore.ReadTx) error {
		for _, r := range batch {
			for _, u := range r.updates {
				t := tx.Task(u.GetTaskId())
				if t == nil || t.GetNodeId() != r.nodeID || !raftstore.StatusAdvances(t.GetStatus(), u.GetStatus()) {
					continue
				}
				out = append(out, &minkepb.TaskStatusReport{NodeId: r.nodeID, TaskId: u.GetTaskId(), Status: u.GetStatus()})
			}
		}
		return nil
	})
	return out
}
