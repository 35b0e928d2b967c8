package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// ImageResolver maps a service's image reference to the one workers pull
// (for example a name pushed to the built-in registry → its registry
// address). It may do I/O; it runs before, never inside, a transaction.
type ImageResolver func(image string) string

// Replicated keeps every replicated service at slots 1..N with one live task
// each: it creates tasks for empty slots, replaces failed ones according to
// the restart policy, replaces tasks whose spec is out of date, shuts down
// surplus slots, tasks on DOWN nodes and tasks of removed services, and trims
// each slot's history.
type Replicated struct {
	store   Store
	resolve ImageResolver
	now     func() time.Time
	log     *slog.Logger
	// HistoryRetention is how many ended tasks a slot keeps (default 5).
	HistoryRetention int
}

// NewReplicated returns the controller; call Run on gaining leadership.
func NewReplicated(store Store, resolve ImageResolver, now func() time.Time, log *slog.Logger) *Replicated {
	if resolve == nil {
		resolve = func(s string) string { return s }
	}
	return &Replicated{store: store, resolve: resolve, now: now, log: log.With("component", "orchestrator"),
		HistoryRetention: DefaultHistoryRetention}
}

// Run reconciles until ctx ends. It returns nil on ctx end.
func (r *Replicated) Run(ctx context.Context) error {
	sub, err := r.store.ViewAndWatch(nil)
	if err != nil {
		return err
	}
	defer sub.Cancel()
	// wakes holds, per service, when a delayed restart is due.
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
	merge(r.reconcile(ctx, nil), nil)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		resetTimer(timer, earliest(wakes), r.now())
		var dirty map[string]bool
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return raftstore.ErrStopped
		case <-timer.C:
			dirty = map[string]bool{}
			now := r.now()
			for id, w := range wakes {
				if !w.After(now) {
					dirty[id] = true
				}
			}
		case <-sub.Ready():
			dirty = dirtyServices(sub.Drain())
		}
		if dirty != nil && len(dirty) == 0 {
			continue
		}
		merge(r.reconcile(ctx, dirty), dirty)
	}
}

func earliest(wakes map[string]time.Time) time.Time {
	var first time.Time
	for _, w := range wakes {
		if first.IsZero() || w.Before(first) {
			first = w
		}
	}
	return first
}

func resetTimer(t *time.Timer, wake, now time.Time) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	d := time.Hour
	if !wake.IsZero() {
		d = max(wake.Sub(now), 0)
	}
	t.Reset(d)
}

// dirtyServices returns the services that events touch; nil means all
// (node changes and resets affect every service).
func dirtyServices(evs []raftstore.Event) map[string]bool {
	dirty := map[string]bool{}
	for _, ev := range evs {
		switch o := ev.Object.(type) {
		case *minkepb.Service:
			dirty[o.GetMeta().GetId()] = true
		case *minkepb.Task:
			dirty[o.GetServiceId()] = true
		case *minkepb.Node:
			return nil
		case nil:
			return nil // reset
		}
	}
	return dirty
}

// reconcile brings the given services (nil: all, plus tasks of removed
// services) to their desired state in one command, and returns, per
// service, when it must run again for a delayed restart. On failure every
// given service is retried in a second.
func (r *Replicated) reconcile(ctx context.Context, dirty map[string]bool) map[string]time.Time {
	var wakes map[string]time.Time
	var ids []string
	images := r.resolveImages(dirty)
	err := r.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		wakes = map[string]time.Time{}
		now := r.now()
		ids = ids[:0]
		if dirty == nil {
			seen := map[string]bool{}
			for _, s := range tx.Services() {
				seen[s.GetMeta().GetId()] = true
			}
			for _, t := range tx.Tasks() {
				seen[t.GetServiceId()] = true
			}
			for id := range seen {
				ids = append(ids, id)
			}
		} else {
			for id := range dirty {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			svc := tx.Service(id)
			if svc == nil {
				if err := r.removeOrphans(tx, id); err != nil {
					return err
				}
				continue
			}
			w, err := r.reconcileService(tx, svc, now, images)
			if err != nil {
				return err
			}
			if !w.IsZero() {
				wakes[id] = w
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn("reconcile failed; retrying in 1s", "err", err)
		retry := r.now().Add(time.Second)
		wakes = map[string]time.Time{}
		for _, id := range ids {
			wakes[id] = retry
		}
	}
	return wakes
}

// resolveImages resolves the images of the services to reconcile (nil:
// all), before the transaction that creates their tasks.
func (r *Replicated) resolveImages(dirty map[string]bool) map[string]string {
	out := map[string]string{}
	_ = r.store.View(func(tx raftstore.ReadTx) error {
		for _, s := range tx.Services() {
			if dirty == nil || dirty[s.GetMeta().GetId()] {
				out[s.GetSpec().GetTask().GetContainer().GetImage()] = ""
			}
		}
		return nil
	})
	for img := range out {
		out[img] = r.resolve(img)
	}
	return out
}

// removeOrphans stops and deletes the tasks of a removed service.
func (r *Replicated) removeOrphans(tx *raftstore.WriteTx, serviceID string) error {
	for _, t := range tx.TasksByService(serviceID) {
		if err := r.retire(tx, t, true); err != nil {
			return err
		}
	}
	return nil
}

// retire shuts a task down; with remove it is also deleted once that is
// safe (see removable).
func (r *Replicated) retire(tx *raftstore.WriteTx, t *minkepb.Task, remove bool) error {
	if remove && removable(t, tx.Node(t.GetNodeId())) {
		return tx.Delete(t)
	}
	if t.GetDesiredState() != minkepb.TaskState_SHUTDOWN {
		return tx.Update(withDesired(t, minkepb.TaskState_SHUTDOWN))
	}
	return nil
}

func (r *Replicated) reconcileService(tx *raftstore.WriteTx, svc *minkepb.Service, now time.Time, images map[string]string) (time.Time, error) {
	want := svc.GetSpec().GetReplicated().GetReplicas()
	bySlot := map[uint64][]*minkepb.Task{}
	for _, t := range tx.TasksByService(svc.GetMeta().GetId()) {
		bySlot[t.GetSlot()] = append(bySlot[t.GetSlot()], t)
	}
	slots := make([]uint64, 0, len(bySlot))
	for s := range bySlot {
		if s > want {
			slots = append(slots, s)
		}
	}
	for s := uint64(1); s <= want; s++ {
		slots = append(slots, s)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i] < slots[j] })

	var wake time.Time
	for _, slot := range slots {
		tasks := bySlot[slot]
		sort.Slice(tasks, func(i, j int) bool {
			return tasks[i].GetMeta().GetCreatedAt().AsTime().Before(tasks[j].GetMeta().GetCreatedAt().AsTime())
		})
		if slot > want {
			for _, t := range tasks {
				if err := r.retire(tx, t, true); err != nil {
					return wake, err
				}
			}
			continue
		}
		w, err := r.reconcileSlot(tx, svc, slot, tasks, now, images)
		if err != nil {
			return wake, err
		}
		if !w.IsZero() && (wake.IsZero() || w.Before(wake)) {
			wake = w
		}
	}
	return wake, nil
}

// reconcileSlot keeps one live task in a slot. tasks are oldest first.
func (r *Replicated) reconcileSlot(tx *raftstore.WriteTx, svc *minkepb.Service, slot uint64, tasks []*minkepb.Task,
	now time.Time, images map[string]string) (time.Time, error) {
	var live *minkepb.Task
	replaceNow := false
	for _, t := range tasks {
		if t.GetDesiredState() != minkepb.TaskState_RUNNING {
			continue
		}
		if live != nil { // never two live tasks in a slot: keep the newest
			if err := r.retire(tx, live, false); err != nil {
				return time.Time{}, err
			}
		}
		live = t
	}
	if live != nil {
		node := tx.Node(live.GetNodeId())
		switch {
		case live.GetNodeId() != "" && (node == nil || node.GetStatus().GetState() == minkepb.NodeStatus_DOWN):
			// Its node is gone: the task is lost, replace it at once.
			o := withDesired(live, minkepb.TaskState_SHUTDOWN)
			o.Status = &minkepb.TaskStatus{Timestamp: timestamppb.New(now), State: minkepb.TaskState_ORPHANED,
				Message: "node is down", Err: "task lost: node " + live.GetNodeId() + " is down"}
			if err := tx.Update(o); err != nil {
				return time.Time{}, err
			}
			live, replaceNow = nil, true
		case node.GetSpec().GetAvailability() == minkepb.NodeSpec_DRAIN:
			// The operator drained its node: stop it there and start a
			// replacement elsewhere at once.
			if err := tx.Update(withDesired(live, minkepb.TaskState_SHUTDOWN)); err != nil {
				return time.Time{}, err
			}
			live, replaceNow = nil, true
		case IsTerminal(live.GetStatus().GetState()):
			if err := tx.Update(withDesired(live, minkepb.TaskState_SHUTDOWN)); err != nil {
				return time.Time{}, err
			}
			live = nil
		case !proto.Equal(live.GetSpec(), svc.GetSpec().GetTask()):
			// The service changed: replace the task with one of the new spec.
			if err := tx.Update(withDesired(live, minkepb.TaskState_SHUTDOWN)); err != nil {
				return time.Time{}, err
			}
			live, replaceNow = nil, true
		}
	}
	if err := r.trimHistory(tx, slot, tx.TasksByService(svc.GetMeta().GetId())); err != nil {
		return time.Time{}, err
	}
	if live != nil {
		return time.Time{}, nil
	}
	var last *minkepb.Task
	if len(tasks) > 0 {
		last = tx.Task(tasks[len(tasks)-1].GetMeta().GetId())
	}
	policy := svc.GetSpec().GetTask().GetRestart()
	at, ok := restartAt(policy, last, replaceNow, now)
	if !ok {
		return time.Time{}, nil
	}
	if at.After(now) {
		return at, nil
	}
	image := svc.GetSpec().GetTask().GetContainer().GetImage()
	if resolved, ok := images[image]; ok {
		image = resolved
	}
	t := newTask(svc, slot, image, now)
	if last != nil && !replaceNow {
		countRestart(t, last, policy, now)
	}
	return time.Time{}, tx.Create(t)
}

// countRestart carries the slot's restart count into its new task t: one
// more than last's within the policy's window, or a fresh window.
func countRestart(t, last *minkepb.Task, p *minkepb.RestartPolicy, now time.Time) {
	window := p.GetWindow().AsDuration()
	start := last.GetRestartWindowStart()
	if window > 0 && (start == nil || now.Sub(start.AsTime()) > window) {
		t.Restarts, t.RestartWindowStart = 1, timestamppb.New(now)
		return
	}
	t.Restarts = last.GetRestarts() + 1
	t.RestartWindowStart = start
	if t.RestartWindowStart == nil {
		t.RestartWindowStart = timestamppb.New(now)
	}
}

// trimHistory deletes a slot's oldest ended tasks beyond the retention.
func (r *Replicated) trimHistory(tx *raftstore.WriteTx, slot uint64, all []*minkepb.Task) error {
	var ended []*minkepb.Task
	for _, t := range all {
		if t.GetSlot() == slot && t.GetDesiredState() == minkepb.TaskState_SHUTDOWN && removable(t, tx.Node(t.GetNodeId())) {
			ended = append(ended, t)
		}
	}
	sort.Slice(ended, func(i, j int) bool {
		return ended[i].GetMeta().GetCreatedAt().AsTime().Before(ended[j].GetMeta().GetCreatedAt().AsTime())
	})
	for len(ended) > r.HistoryRetention {
		if err := tx.Delete(ended[0]); err != nil {
			return err
		}
		ended = ended[1:]
	}
	return nil
}

// restartAt decides whether and when an empty slot gets a new task. last
// is the slot's newest task (nil for a new slot); replaceNow means the slot
// was emptied by the system (spec change, lost node), not by the task
// ending, so the restart policy does not apply.
func restartAt(p *minkepb.RestartPolicy, last *minkepb.Task, replaceNow bool, now time.Time) (time.Time, bool) {
	if last == nil || replaceNow {
		return now, true
	}
	state := last.GetStatus().GetState()
	switch p.GetCondition() {
	case minkepb.RestartPolicy_NONE:
		return time.Time{}, false
	case minkepb.RestartPolicy_ON_FAILURE:
		if state == minkepb.TaskState_COMPLETE {
			return time.Time{}, false
		}
	}
	if max := p.GetMaxAttempts(); max > 0 {
		restarts := last.GetRestarts()
		if w := p.GetWindow().AsDuration(); w > 0 && last.GetRestartWindowStart() != nil &&
			now.Sub(last.GetRestartWindowStart().AsTime()) > w {
			restarts = 0 // the window has passed: a new one starts
		}
		if restarts >= max {
			return time.Time{}, false
		}
	}
	if state == minkepb.TaskState_ORPHANED {
		return now, true
	}
	delay := DefaultRestartDelay
	if p.GetDelay() != nil {
		delay = p.GetDelay().AsDuration()
	}
	return taskEnd(last).Add(delay), true
}
