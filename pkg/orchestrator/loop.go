package orchestrator

import (
	"context"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// runServiceLoop is the loop the per-service controllers share: reconcile
// every service once, then the services that store events touch, and the
// ones whose wake-up time (returned by reconcile) has come. reconcile gets
// the services to look at (nil: all) and returns, per service, when to look
// again. It returns nil when ctx ends.
//
// ignore, if set, drops task events that cannot change what reconcile
// does for the task's service: at 100,000 tasks, workers' progress reports
// are most events, and reconciling a service per batch of them kept the
// controllers busy re-reading every task.
func runServiceLoop(ctx context.Context, store Store, now func() time.Time,
	reconcile func(ctx context.Context, dirty map[string]bool) map[string]time.Time, ignore ignoreTask) error {
	sub, err := store.ViewAndWatch(nil)
	if err != nil {
		return err
	}
	defer sub.Cancel()
	// wakes holds, per service, when it is due again (a delayed restart, an
	// update's delay or monitor period).
	wakes := map[string]time.Time{}
	merge := func(got map[string]time.Time, dirty map[string]bool) {
		if dirty == nil {
			clear(wakes)
		}
		for id := range dirty {
			delete(wakes, id)
		}
		for id, w := range got {
			wakes[id] = w
		}
	}
	merge(reconcile(ctx, nil), nil)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		resetTimer(timer, earliest(wakes), now())
		var dirty map[string]bool
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return raftstore.ErrStopped
		case <-timer.C:
			dirty = map[string]bool{}
			t := now()
			for id, w := range wakes {
				if !w.After(t) {
					dirty[id] = true
				}
			}
		case <-sub.Ready():
			dirty = dirtyServices(store, sub.Drain(), ignore)
		}
		if dirty != nil && len(dirty) == 0 {
			continue
		}
		merge(reconcile(ctx, dirty), dirty)
	}
}

// retryAll is the wake-up set after a failed reconcile of ids: all of them
// again in a second.
func retryAll(ids []string, now time.Time) map[string]time.Time {
	retry := now.Add(time.Second)
	wakes := make(map[string]time.Time, len(ids))
	for _, id := range ids {
		wakes[id] = retry
	}
	return wakes
}

// ignoreTask reports whether a committed task event cannot change what a
// controller does for the task's service; svc is the service now (nil once
// removed).
type ignoreTask func(ev raftstore.Event, t *minkepb.Task, svc *minkepb.Service) bool

// dirtyServices returns the services that events touch, less the task
// events ignore drops; nil means all (a reset). A node change touches the
// services with tasks on the node (lost, drained, or held by it), and the
// ones that look at every node: global services, and those updating or
// rebalancing. Reconciling every service on each node change read every
// task, and at thousands of nodes their sessions come and go.
func dirtyServices(store Store, evs []raftstore.Event, ignore ignoreTask) map[string]bool {
	dirty := map[string]bool{}
	var (
		tasks []raftstore.Event
		nodes []string
	)
	for _, ev := range evs {
		switch o := ev.Object.(type) {
		case *minkepb.Service:
			dirty[o.GetMeta().GetId()] = true
		case *minkepb.Task:
			if ignore == nil {
				dirty[o.GetServiceId()] = true
			} else {
				tasks = append(tasks, ev)
			}
		case *minkepb.Node:
			nodes = append(nodes, o.GetMeta().GetId())
		case nil:
			return nil // reset
		}
	}
	if len(tasks) == 0 && len(nodes) == 0 {
		return dirty
	}
	_ = store.View(func(tx raftstore.ReadTx) error {
		for _, ev := range tasks {
			t := ev.Object.(*minkepb.Task)
			id := t.GetServiceId()
			if dirty[id] {
				continue
			}
			if !ignore(ev, t, tx.Service(id)) {
				dirty[id] = true
			}
		}
		if len(nodes) == 0 {
			return nil
		}
		for _, id := range nodes {
			for _, t := range tx.TasksByNode(id) {
				dirty[t.GetServiceId()] = true
			}
		}
		for _, svc := range tx.Services() {
			if IsGlobal(svc.GetSpec()) || svc.GetRebalancing() || active(svc.GetUpdateStatus().GetState()) {
				dirty[svc.GetMeta().GetId()] = true
			}
		}
		return nil
	})
	return dirty
}

// quiet reports whether a service has no update, rollback or rebalance
// under way or paused: then no slot holds a start-first pair, whose older
// task the orchestrator retires once the newer is Ready.
func quiet(svc *minkepb.Service) bool {
	if svc.GetRebalancing() {
		return false
	}
	switch svc.GetUpdateStatus().GetState() {
	case minkepb.UpdateStatus_UNKNOWN, minkepb.UpdateStatus_COMPLETED, minkepb.UpdateStatus_ROLLBACK_COMPLETED:
		return true
	}
	return false
}
