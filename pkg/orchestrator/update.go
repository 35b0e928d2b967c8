package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Swarm's update and rollback defaults.
const (
	DefaultUpdateMonitor = 5 * time.Second
)

// Updater rolls services onto their current spec: it replaces tasks whose
// spec is out of date, parallelism slots at a time, each batch waiting
// delay once its tasks are Ready (running and, with a healthcheck,
// healthy), and takes the failure action when more than max_failure_ratio
// of the updated tasks fail before the update completes. stop-first stops
// the old task before its replacement starts; start-first starts the
// replacement and retires the old task once the new one is Ready.
//
// The Updater keeps no state of its own: where an update stands is read
// from the store each time (Service.update_status, the tasks' specs,
// creation times and states), so a new leader resumes an update in
// progress. It also carries out rebalance requests (see rebalance.go).
type Updater struct {
	store   Store
	resolve ImageResolver
	now     func() time.Time
	log     *slog.Logger
}

// NewUpdater returns the controller; call Run on gaining leadership.
func NewUpdater(store Store, resolve ImageResolver, now func() time.Time, log *slog.Logger) *Updater {
	if resolve == nil {
		resolve = func(s string) string { return s }
	}
	return &Updater{store: store, resolve: resolve, now: now, log: log.With("component", "updater")}
}

// Run updates until ctx ends.
func (u *Updater) Run(ctx context.Context) error {
	return runServiceLoop(ctx, u.store, u.now, u.reconcile, notUpdating)
}

// notUpdating: with no update, rollback or rebalance under way, the
// Updater acts only on tasks out of date with their service, which only a
// service change or a new task out of date can bring; a change of an
// existing task, or a new task made from the service's spec (nearly every
// one), is ignored. While bench-scheduler created 100,000 tasks, the
// Updater took 4% of the leader's CPU stepping their services after the
// commands that created them, to find every task up to date.
func notUpdating(ev raftstore.Event, t *minkepb.Task, svc *minkepb.Service) bool {
	if svc == nil || active(svc.GetUpdateStatus().GetState()) || svc.GetRebalancing() {
		return false
	}
	switch ev.Kind {
	case raftstore.EventUpdate:
		return true
	case raftstore.EventCreate:
		return upToDate(t, svc)
	}
	return false
}

// reconcile takes one step of every given service's update (nil: all) in
// one command and returns, per service, when to look again.
func (u *Updater) reconcile(ctx context.Context, dirty map[string]bool) map[string]time.Time {
	// Only an update or rebalance in progress creates tasks here (start-first
	// replacements, moves), so only their images are resolved.
	images := map[string]string{}
	_ = u.store.View(func(tx raftstore.ReadTx) error {
		for _, s := range tx.Services() {
			if (dirty == nil || dirty[s.GetMeta().GetId()]) && (active(s.GetUpdateStatus().GetState()) || s.GetRebalancing()) {
				images[s.GetSpec().GetTask().GetContainer().GetImage()] = ""
			}
		}
		return nil
	})
	for img := range images {
		images[img] = u.resolve(img)
	}
	var wakes map[string]time.Time
	var ids []string
	err := u.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		wakes = map[string]time.Time{}
		ids = ids[:0]
		now := u.now()
		for _, s := range tx.Services() {
			if dirty == nil || dirty[s.GetMeta().GetId()] {
				ids = append(ids, s.GetMeta().GetId())
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			w, err := u.step(tx, tx.Service(id), now, images)
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
		u.log.Warn("update step failed; retrying in 1s", "err", err)
		return retryAll(ids, u.now())
	}
	return wakes
}

// EffectiveUpdateConfig is the config an update (or, with rollback, a
// rollback) of spec runs with: the spec's, or swarm's defaults.
func EffectiveUpdateConfig(spec *minkepb.ServiceSpec, rollback bool) *minkepb.UpdateConfig {
	c := spec.GetUpdateConfig()
	if rollback {
		c = spec.GetRollbackConfig()
	}
	if c == nil {
		return &minkepb.UpdateConfig{Parallelism: 1}
	}
	return c
}

func monitorOf(c *minkepb.UpdateConfig) time.Duration {
	if c.GetMonitor() == nil {
		return DefaultUpdateMonitor
	}
	return c.GetMonitor().AsDuration()
}

// active reports whether an update or rollback is under way.
func active(s minkepb.UpdateStatus_State) bool {
	return s == minkepb.UpdateStatus_UPDATING || s == minkepb.UpdateStatus_ROLLBACK_STARTED
}

// slotView is one slot as the updater sees it.
type slotView struct {
	ref   slotRef
	alive []*minkepb.Task // live and not ended, oldest first
	// stopping: the updater stopped the slot's task (stop-first) and the
	// orchestrator has not started its replacement yet.
	stopping bool
	// empty: no live task, and none coming from the updater; the
	// orchestrator fills it (now, or after the restart delay).
	empty bool
	// filled: the orchestrator keeps a task in this slot; a global
	// service's task on a node that is no longer eligible is not updated
	// but removed by the orchestrator.
	filled bool
}

// slots groups a service's tasks the way the orchestrator keeps them:
// replicated slots 1..N (each listed, with tasks or not), or one slot per
// node for global services. fills reports whether the orchestrator keeps
// a task in a slot (always for replicated slots; for a global service's
// node, whether it is eligible).
func slots(svc *minkepb.Service, tasks []*minkepb.Task, fills func(slotRef) bool) []slotView {
	global := IsGlobal(svc.GetSpec())
	want := svc.GetSpec().GetReplicated().GetReplicas()
	byRef := map[slotRef][]*minkepb.Task{}
	if !global {
		for s := uint64(1); s <= want; s++ {
			byRef[slotRef{slot: s}] = nil
		}
	}
	for _, t := range tasks {
		ref := slotRef{slot: t.GetSlot()}
		if global {
			ref = slotRef{node: slotNode(t)}
		} else if t.GetSlot() == 0 || t.GetSlot() > want {
			continue
		}
		byRef[ref] = append(byRef[ref], t)
	}
	out := make([]slotView, 0, len(byRef))
	for ref, ts := range byRef {
		byCreation(ts)
		v := slotView{ref: ref, empty: true}
		for _, t := range ts {
			if live(t) && !IsTerminal(t.GetStatus().GetState()) {
				v.alive = append(v.alive, t)
			}
		}
		filled := fills(ref)
		v.filled = filled
		if len(v.alive) == 0 && len(ts) > 0 && ts[len(ts)-1].GetReplaceWhenStopped() && filled {
			v.stopping = true
		}
		v.empty = len(v.alive) == 0 && !v.stopping && filled
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ref.slot != out[j].ref.slot {
			return out[i].ref.slot < out[j].ref.slot
		}
		return out[i].ref.node < out[j].ref.node
	})
	return out
}

// slotFiller is slots' fills for a service.
func slotFiller(tx *raftstore.WriteTx, svc *minkepb.Service) func(slotRef) bool {
	if !IsGlobal(svc.GetSpec()) {
		return func(slotRef) bool { return true }
	}
	constraints := placementOf(svc.GetSpec().GetTask().GetPlacement()).Constraints
	return func(ref slotRef) bool { return globalRules(tx.Node(ref.node), constraints).place }
}

// progress is where an update stands, read from the store.
type progress struct {
	dirty      []slotView // slots whose only live task is out of date
	busy       int        // slots being replaced, or in their delay after
	empty      int        // slots waiting for the orchestrator to fill them
	considered int        // slots the update covers
	lastReady  time.Time  // when the last replaced slot became Ready
	wake       time.Time  // when a delay ends
	// failed are tasks of the new spec that failed since the start, one
	// per slot (a slot whose task fails again counts once).
	failed []string
}

func assess(svc *minkepb.Service, tasks []*minkepb.Task, fills func(slotRef) bool, cfg *minkepb.UpdateConfig, now time.Time) progress {
	var p progress
	start := svc.GetUpdateStatus().GetStartedAt().AsTime()
	delay := cfg.GetDelay().AsDuration()
	for _, v := range slots(svc, tasks, fills) {
		if !v.filled {
			continue
		}
		switch {
		case v.empty:
			p.empty++
		case v.stopping || len(v.alive) > 1:
			p.busy++
			p.considered++
		case len(v.alive) == 1:
			t := v.alive[0]
			if !upToDate(t, svc) {
				p.dirty = append(p.dirty, v)
				p.considered++
				continue
			}
			if t.GetMeta().GetCreatedAt().AsTime().Before(start) || waitingForRoom(t) {
				// A global task waiting for room on its node is up to
				// date; its node, not the update, holds it back.
				p.considered++
				continue
			}
			p.considered++
			if !Ready(t) {
				p.busy++
				continue
			}
			ready := t.GetStatus().GetTimestamp().AsTime()
			if ready.After(p.lastReady) {
				p.lastReady = ready
			}
			if end := ready.Add(delay); delay > 0 && now.Before(end) {
				p.busy++
				p.wake = earlier(p.wake, end)
			}
		}
	}
	global := IsGlobal(svc.GetSpec())
	firstFailure := map[slotRef]*minkepb.Task{}
	for _, t := range tasks {
		if !failed(t) || !upToDate(t, svc) || t.GetMeta().GetCreatedAt().AsTime().Before(start) {
			continue
		}
		ref := slotRef{slot: t.GetSlot()}
		if global {
			ref = slotRef{node: slotNode(t)}
		}
		if f := firstFailure[ref]; f == nil || taskEnd(t).Before(taskEnd(f)) {
			firstFailure[ref] = t
		}
	}
	for _, t := range firstFailure {
		p.failed = append(p.failed, t.GetMeta().GetId())
	}
	sort.Strings(p.failed)
	return p
}

// step moves one service's update forward and returns when to look again.
func (u *Updater) step(tx *raftstore.WriteTx, svc *minkepb.Service, now time.Time, images map[string]string) (time.Time, error) {
	if svc == nil || IsJob(svc.GetSpec()) {
		return time.Time{}, nil
	}
	st := svc.GetUpdateStatus()
	state := st.GetState()
	if state == minkepb.UpdateStatus_PAUSED || state == minkepb.UpdateStatus_ROLLBACK_PAUSED {
		return time.Time{}, nil
	}
	rollingBack := state == minkepb.UpdateStatus_ROLLBACK_STARTED
	cfg := EffectiveUpdateConfig(svc.GetSpec(), rollingBack)
	tasks := tx.TasksByService(svc.GetMeta().GetId())
	p := assess(svc, tasks, slotFiller(tx, svc), cfg, now)
	if !active(state) {
		if len(p.dirty) == 0 && !svc.GetRebalancing() {
			return time.Time{}, nil
		}
		// Out-of-date tasks with no update recorded (a spec written
		// without one): update them like any other change.
		next := proto.Clone(svc).(*minkepb.Service)
		next.UpdateStatus = &minkepb.UpdateStatus{State: minkepb.UpdateStatus_UPDATING,
			StartedAt: timestamppb.New(now), Message: "update in progress"}
		return now, tx.Update(next)
	}
	if len(p.failed) > 0 && float64(len(p.failed))/float64(max(p.considered, 1)) > cfg.GetMaxFailureRatio() {
		switch cfg.GetFailureAction() {
		case minkepb.UpdateConfig_PAUSE:
			return time.Time{}, u.pause(tx, svc, rollingBack, p.failed[0], now)
		case minkepb.UpdateConfig_ROLLBACK:
			if rollingBack || svc.GetPreviousSpec() == nil {
				return time.Time{}, u.pause(tx, svc, rollingBack, p.failed[0], now)
			}
			return now, u.rollback(tx, svc, p.failed[0], now)
		}
	}
	if len(p.dirty) == 0 && p.busy == 0 {
		if p.empty > 0 {
			return time.Time{}, nil // the orchestrator's next task wakes us
		}
		if svc.GetRebalancing() {
			moved, err := u.rebalance(tx, svc, tasks, cfg, now, images)
			if err != nil || moved {
				return time.Time{}, err
			}
		}
		if end := p.lastReady.Add(monitorOf(cfg)); !p.lastReady.IsZero() && now.Before(end) {
			return end, nil
		}
		return time.Time{}, u.finish(tx, svc, rollingBack, now)
	}
	seats := len(p.dirty)
	if n := int(cfg.GetParallelism()); n > 0 {
		seats = max(n-p.busy, 0)
	}
	for _, v := range p.dirty[:min(seats, len(p.dirty))] {
		if err := u.replace(tx, svc, v, cfg.GetOrder(), now, images); err != nil {
			return time.Time{}, err
		}
	}
	return p.wake, nil
}

// replace starts the replacement of a slot's out-of-date task.
func (u *Updater) replace(tx *raftstore.WriteTx, svc *minkepb.Service, v slotView, order minkepb.UpdateConfig_Order,
	now time.Time, images map[string]string) error {
	old := v.alive[0]
	if order == minkepb.UpdateConfig_START_FIRST && v.ref.node != "" && !fitsNode(tx, tx.Node(v.ref.node), svc.GetSpec().GetTask()) {
		// A global task cannot move elsewhere: without room for both on
		// its node, it is replaced stop-first.
		order = minkepb.UpdateConfig_STOP_FIRST
	}
	if order == minkepb.UpdateConfig_START_FIRST {
		return createTask(tx, slotTask(svc, v.ref, now, images))
	}
	o := withDesired(old, minkepb.TaskState_SHUTDOWN)
	o.ReplaceWhenStopped = true
	return tx.Update(o)
}

// slotTask is a new task of svc's current spec in a slot; one bound to a
// node (global services) is assigned there at once.
func slotTask(svc *minkepb.Service, ref slotRef, now time.Time, images map[string]string) *minkepb.Task {
	image := svc.GetSpec().GetTask().GetContainer().GetImage()
	if resolved, ok := images[image]; ok && resolved != "" {
		image = resolved
	}
	t := newTask(svc, ref.slot, image, now)
	t.JobIteration = svc.GetJobStatus().GetJobIteration()
	if ref.node != "" {
		t.NodeId = ref.node
		t.Status.State = minkepb.TaskState_ASSIGNED
		t.Status.Message = "assigned to its node by the global orchestrator"
	}
	return t
}

func (u *Updater) pause(tx *raftstore.WriteTx, svc *minkepb.Service, rollingBack bool, taskID string, now time.Time) error {
	next := proto.Clone(svc).(*minkepb.Service)
	next.UpdateStatus.State = minkepb.UpdateStatus_PAUSED
	what := "update"
	if rollingBack {
		next.UpdateStatus.State = minkepb.UpdateStatus_ROLLBACK_PAUSED
		what = "rollback"
	}
	next.UpdateStatus.Message = fmt.Sprintf("%s paused due to failure or early termination of task %s", what, taskID)
	u.log.Warn(what+" paused", "service_id", svc.GetMeta().GetId(), "task_id", taskID)
	return tx.Update(next)
}

// rollback returns the service to its previous spec, as a rollback
// update with the rollback config.
func (u *Updater) rollback(tx *raftstore.WriteTx, svc *minkepb.Service, taskID string, now time.Time) error {
	next := proto.Clone(svc).(*minkepb.Service)
	next.Spec, next.PreviousSpec = next.PreviousSpec, next.Spec
	next.Spec.Name = svc.GetSpec().GetName()
	next.Rebalancing = false
	next.UpdateStatus = &minkepb.UpdateStatus{State: minkepb.UpdateStatus_ROLLBACK_STARTED, StartedAt: timestamppb.New(now),
		Message: fmt.Sprintf("update rolled back due to failure or early termination of task %s", taskID)}
	u.log.Warn("update failed; rolling back", "service_id", svc.GetMeta().GetId(), "task_id", taskID)
	return tx.Update(next)
}

func (u *Updater) finish(tx *raftstore.WriteTx, svc *minkepb.Service, rollingBack bool, now time.Time) error {
	next := proto.Clone(svc).(*minkepb.Service)
	next.UpdateStatus.CompletedAt = timestamppb.New(now)
	switch {
	case rollingBack:
		next.UpdateStatus.State = minkepb.UpdateStatus_ROLLBACK_COMPLETED
		if why := svc.GetUpdateStatus().GetMessage(); strings.HasPrefix(why, "update rolled back") {
			next.UpdateStatus.Message = "rollback completed; " + why
		} else {
			next.UpdateStatus.Message = "rollback completed"
		}
	case svc.GetRebalancing():
		next.UpdateStatus.State = minkepb.UpdateStatus_COMPLETED
		next.UpdateStatus.Message = "rebalance completed"
	default:
		next.UpdateStatus.State = minkepb.UpdateStatus_COMPLETED
		next.UpdateStatus.Message = "update completed"
	}
	next.Rebalancing = false
	u.log.Info(next.UpdateStatus.Message, "service_id", svc.GetMeta().GetId())
	return tx.Update(next)
}
