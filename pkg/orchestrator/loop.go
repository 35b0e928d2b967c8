package orchestrator

import (
	"context"
	"time"

	"github.com/minke-io/minke/pkg/raftstore"
)

// runServiceLoop is the loop the per-service controllers share: reconcile
// every service once, then the services that store events touch, and the
// ones whose wake-up time (returned by reconcile) has come. reconcile gets
// the services to look at (nil: all) and returns, per service, when to look
// again. It returns nil when ctx ends.
func runServiceLoop(ctx context.Context, store Store, now func() time.Time,
	reconcile func(ctx context.Context, dirty map[string]bool) map[string]time.Time) error {
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
			dirty = dirtyServices(sub.Drain())
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
