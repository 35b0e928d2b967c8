package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// ImageResolver maps a service's image reference to the one workers pull
// (for example a name pushed to the built-in registry → its registry
// address). It may do I/O; it runs before, never inside, a transaction.
type ImageResolver func(image string) string

// Replicated keeps every service's slots filled in the way its mode asks:
// replicated services at slots 1..N with one live task each, global
// services with one task per eligible node, jobs until their tasks have
// completed. It creates tasks for empty slots, replaces failed ones
// according to the restart policy, and shuts down surplus slots, tasks on
// DOWN or drained nodes and tasks of removed services. Tasks whose spec is
// out of date are left to the Updater, which replaces them at the pace of
// the service's update config; the history of ended tasks is trimmed by the
// Reaper.
type Replicated struct {
	store   Store
	resolve ImageResolver
	now     func() time.Time
	log     *slog.Logger
	// placer, when set, places the tasks a reconcile creates in the
	// command that creates them (see PlaceWith).
	placer *Placement
}

// NewReplicated returns the controller; call Run on gaining leadership.
func NewReplicated(store Store, resolve ImageResolver, now func() time.Time, log *slog.Logger) *Replicated {
	if resolve == nil {
		resolve = func(s string) string { return s }
	}
	return &Replicated{store: store, resolve: resolve, now: now, log: log.With("component", "orchestrator")}
}

// PlaceWith has the tasks this controller creates for empty slots placed
// by p (which must run as well) and committed ASSIGNED with their
// creation; those p cannot place are created pending, for p's passes, as
// without it. Call before Run.
func (r *Replicated) PlaceWith(p *Placement) { r.placer = p }

// Run reconciles until ctx ends. It returns nil on ctx end.
func (r *Replicated) Run(ctx context.Context) error {
	return runServiceLoop(ctx, r.store, r.now, r.reconcile, progressOnly)
}

// progressOnly: a live task's progress towards RUNNING (ASSIGNED,
// ACCEPTED, PREPARING, STARTING, or a new PENDING message) changes no
// decision of reconcileSlot: only a task ending, its desired state, its
// node, and — for the newer task of a start-first pair — its becoming
// Ready do. A RUNNING report (or a health change while RUNNING) is
// therefore ignored only for a quiet service, which holds no such pairs.
func progressOnly(ev raftstore.Event, t *minkepb.Task, svc *minkepb.Service) bool {
	if ev.Kind != raftstore.EventUpdate || svc == nil || !live(t) {
		return false
	}
	switch s := t.GetStatus().GetState(); {
	case IsTerminal(s):
		return false
	case s == minkepb.TaskState_RUNNING:
		return quiet(svc)
	}
	return true
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

// reconcile brings the given services (nil: all, plus tasks of removed
// services) to their desired state in one command, and returns, per
// service, when it must run again for a delayed restart. On failure every
// given service is retried in a second.
func (r *Replicated) reconcile(ctx context.Context, dirty map[string]bool) map[string]time.Time {
	images := r.resolveImages(dirty)
	var ids []string
	if dirty == nil {
		seen := map[string]bool{}
		_ = r.store.View(func(tx raftstore.ReadTx) error {
			for _, s := range tx.Services() {
				seen[s.GetMeta().GetId()] = true
			}
			for _, t := range tx.Tasks() {
				seen[t.GetServiceId()] = true
			}
			return nil
		})
		for id := range seen {
			ids = append(ids, id)
		}
	} else {
		for id := range dirty {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	// The services are split into up to reconcilers contiguous groups,
	// each reconciled by its own goroutine, so that several commands are
	// in flight at once: one at a time, each waiting for its commit,
	// creating 100,000 tasks took a commit round trip per 2,000 of them,
	// and on a busy leader that round trip is hundreds of milliseconds.
	// Groups hold disjoint services, whose tasks no other group touches.
	groups := splitEven(ids, max(1, min(reconcilers, len(ids)/minGroup)))
	if len(groups) == 1 {
		return r.reconcileGroup(ctx, ids, images)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wakes = map[string]time.Time{}
	)
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := r.reconcileGroup(ctx, g, images)
			mu.Lock()
			maps.Copy(wakes, got)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return wakes
}

// reconcilers bounds the groups (and so the commands in flight) of one
// reconcile; a group has at least minGroup services, so a reconcile of a
// few services (the usual case) stays one sequence of commands.
const (
	reconcilers = 4
	minGroup    = 16
)

// splitEven splits ids into at most n contiguous groups of about equal
// size, none empty.
func splitEven(ids []string, n int) [][]string {
	n = min(n, len(ids))
	out := make([][]string, 0, n)
	for i := range n {
		out = append(out, ids[i*len(ids)/n:(i+1)*len(ids)/n])
	}
	return out
}

// reconcileGroup reconciles ids one command after another (see reconcile).
func (r *Replicated) reconcileGroup(ctx context.Context, ids []string, images map[string]string) map[string]time.Time {
	wakes := map[string]time.Time{}
	// One command per batch of services, closed once it holds
	// maxActionsPerCommand changes: creating 1,000 services' tasks in one
	// command made a Raft entry of tens of megabytes, which stalled every
	// other commit while it was written and applied.
	for len(ids) > 0 {
		var (
			done   int
			batch  map[string]time.Time
			placed []string // by any attempt of the command (see Placement.Release)
		)
		err := r.store.Update(ctx, func(tx *raftstore.WriteTx) error {
			batch, done = map[string]time.Time{}, 0
			now := r.now()
			for _, id := range ids {
				if done > 0 && tx.Pending() >= maxActionsPerCommand {
					break
				}
				done++
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
					batch[id] = w
				}
			}
			if r.placer != nil {
				tx.AssignCreated(func(pending, assigned []*minkepb.Task) (map[string]string, []string) {
					got, full := r.placer.PlaceNew(pending, assigned)
					for id := range got {
						placed = append(placed, id)
					}
					return got, full
				}, assignedMessage, now)
			}
			return nil
		})
		if len(placed) > 0 {
			r.placer.Release(placed)
		}
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				r.log.Warn("reconcile failed; retrying in 1s", "err", err)
				maps.Copy(wakes, retryAll(ids, r.now()))
			}
			return wakes
		}
		maps.Copy(wakes, batch)
		ids = ids[done:]
	}
	return wakes
}

// maxActionsPerCommand is how many changes a reconcile command may gather
// before the services left go to the next command (a service's changes
// always go in one). Every commit waits for the commands before it to be
// applied, and on a busy leader a command of 2,000 task creations took
// 70-190 ms to apply: the creates of users deploying at that moment waited
// behind up to reconcilers of them. Of 500, such a command takes 40-100
// ms; bench-scheduler's mean commit latency (3 managers) was 82-86 ms in
// four runs of seven (103-118 in the others), against 109-132 ms in all
// five runs with 2,000; in those four the services were all created
// 2-3 s sooner.
const maxActionsPerCommand = 500

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
	switch svc.GetSpec().GetMode().(type) {
	case *minkepb.ServiceSpec_Global:
		return r.reconcileGlobal(tx, svc, now, images)
	case *minkepb.ServiceSpec_ReplicatedJob:
		return r.reconcileReplicatedJob(tx, svc, now, images)
	case *minkepb.ServiceSpec_GlobalJob:
		return r.reconcileGlobalJob(tx, svc, now, images)
	}
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
		byCreation(tasks)
		if slot > want {
			for _, t := range tasks {
				if err := r.retire(tx, t, true); err != nil {
					return wake, err
				}
			}
			continue
		}
		w, err := r.reconcileSlot(tx, svc, slotRef{slot: slot}, tasks, now, images, slotRules{place: true})
		if err != nil {
			return wake, err
		}
		wake = earlier(wake, w)
	}
	return wake, nil
}

// earlier returns the earlier of two wake times; zero means none.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
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
