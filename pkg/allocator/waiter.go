package allocator

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Store is what the Waiter needs of the replicated store.
type Store interface {
	ViewAndWatch(fn func(raftstore.ReadTx) error) (*raftstore.Subscription, error)
	Update(ctx context.Context, fn func(*raftstore.WriteTx) error) error
}

var _ Store = (*raftstore.Node)(nil)

// Waiter is the leader-only controller that finishes what AttachNetworks
// could not: a task created while one of its networks was full waits in
// state NEW; when an address may have been freed (a task on a network
// ended or went, a service dropped a VIP) the Waiter attaches the waiting
// tasks, oldest first, and hands them to the scheduler (PENDING), or to
// their node (ASSIGNED) when a global service bound them to one at
// creation. It keeps no state beyond a hint, so a new leader just starts
// over.
type Waiter struct {
	store Store
	now   func() time.Time
	log   *slog.Logger
}

// NewWaiter returns the controller; call Run on gaining leadership.
func NewWaiter(store Store, now func() time.Time, log *slog.Logger) *Waiter {
	return &Waiter{store: store, now: now, log: log.With("component", "allocator")}
}

// Run attaches waiting tasks until ctx ends.
func (w *Waiter) Run(ctx context.Context) error {
	sub, err := w.store.ViewAndWatch(nil)
	if err != nil {
		return err
	}
	defer sub.Cancel()
	waiting := w.pass(ctx)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		freed := false
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return raftstore.ErrStopped
		case <-retry.C:
			freed = true
		case <-sub.Ready():
			for _, ev := range sub.Drain() {
				f, wait := classify(ev)
				freed, waiting = freed || f, waiting || wait
			}
		}
		if !waiting || !freed {
			continue
		}
		var err error
		if waiting, err = w.passErr(ctx); err != nil && !errors.Is(err, context.Canceled) {
			w.log.Warn("attaching waiting tasks failed; retrying in 1s", "err", err)
			waiting = true
			retry.Reset(time.Second)
		}
	}
}

// classify says whether an event may have freed an address (freed) and
// whether it shows a task waiting for one (wait). A newly waiting task
// counts as both: an address may have been freed between its creator's
// read and its commit, with no later event to say so.
func classify(ev raftstore.Event) (freed, wait bool) {
	switch o := ev.Object.(type) {
	case nil: // EventReset
		return true, true
	case *minkepb.Service, *minkepb.Network: // a VIP dropped; a network gone (its waiting tasks are rejected)
		return true, false
	case *minkepb.Task:
		if waitingTask(o) {
			return true, true
		}
		if len(o.GetNetworks()) > 0 && (ev.Kind == raftstore.EventRemove || o.GetStatus().GetState() >= minkepb.TaskState_COMPLETE) {
			return true, false
		}
	}
	return false, false
}

func waitingTask(t *minkepb.Task) bool {
	return t.GetStatus().GetState() == minkepb.TaskState_NEW && t.GetDesiredState() == minkepb.TaskState_RUNNING &&
		len(t.GetSpec().GetNetworks()) > 0
}

// pass is passErr that logs.
func (w *Waiter) pass(ctx context.Context) bool {
	waiting, err := w.passErr(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		w.log.Warn("attaching waiting tasks failed; retrying on the next change", "err", err)
		return true
	}
	return waiting
}

// passErr attaches every waiting task it can in one write and reports
// whether some still wait.
func (w *Waiter) passErr(ctx context.Context) (stillWaiting bool, err error) {
	now := timestamppb.New(w.now())
	err = w.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		stillWaiting = false
		var waiting []*minkepb.Task
		for _, t := range tx.Tasks() {
			if waitingTask(t) {
				waiting = append(waiting, t)
			}
		}
		slices.SortStableFunc(waiting, func(a, b *minkepb.Task) int {
			return a.GetMeta().GetCreatedAt().AsTime().Compare(b.GetMeta().GetCreatedAt().AsTime())
		})
		for _, cur := range waiting {
			t := proto.Clone(cur).(*minkepb.Task)
			switch res, why := attach(tx, t); res {
			case attachWait:
				stillWaiting = true
				if why == cur.GetStatus().GetMessage() {
					continue
				}
				t.Networks = nil
				t.Status = &minkepb.TaskStatus{State: minkepb.TaskState_NEW, Message: why, Timestamp: cur.GetStatus().GetTimestamp()}
			case attachGone:
				t.Networks = nil
				t.Status = &minkepb.TaskStatus{State: minkepb.TaskState_REJECTED, Message: "network attachment failed", Err: why, Timestamp: now}
			case attached:
				t.Status = &minkepb.TaskStatus{State: minkepb.TaskState_PENDING, Message: "pending task scheduling", Timestamp: now}
				if t.GetNodeId() != "" { // a global service's task: its node was chosen at creation
					t.Status = &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED, Message: "assigned to its node by the global orchestrator", Timestamp: now}
				}
			}
			if err := tx.Update(t); err != nil {
				return err
			}
		}
		return nil
	})
	return stillWaiting, err
}
