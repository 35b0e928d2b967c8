package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/scheduler"
)

// Placement feeds pending tasks to the pure scheduler and commits each
// batch's assignments in one Raft command. Tasks that cannot be placed keep
// state PENDING with the scheduler's explanation as their status message,
// and are tried again whenever a node or task changes.
type Placement struct {
	store Store
	now   func() time.Time
	log   *slog.Logger

	// mu guards the state the running controller keeps (nil when it does
	// not run): its passes and PlaceNew read and change it under mu, and
	// whoever holds mu brings it up to date from the subscription first
	// (sync), so PlaceNew sees every commit before its call.
	mu  sync.Mutex
	st  *placementState
	sub *raftstore.Subscription
	// reset: sync met a snapshot restore; the state must be loaded again.
	reset bool
	// poke tells the loop that a sync outside it drained events that may
	// make pending tasks placeable (see relevant).
	poke chan struct{}
	// passing is set while a pass holds mu to commit its plan (a few
	// hundred milliseconds at scale): PlaceNew does not wait for it and
	// leaves its tasks pending, for the next pass.
	passing atomic.Bool
	// passes counts the passes run (tests wait for the first).
	passes atomic.Uint64
}

// NewPlacement returns the controller; call Run on gaining leadership.
func NewPlacement(store Store, now func() time.Time, log *slog.Logger) *Placement {
	return &Placement{store: store, now: now, log: log.With("component", "scheduler"), poke: make(chan struct{}, 1)}
}

// Batching of scheduling passes, as SwarmKit's scheduler does: a pass
// starts once no relevant change arrived for batchGap, or batchMaxDelay
// after the first one, so a burst of creates (1,000 services at once) is
// placed in a few large passes instead of one per commit.
const (
	batchGap      = 50 * time.Millisecond
	batchMaxDelay = time.Second
)

// Run places tasks until ctx ends.
func (p *Placement) Run(ctx context.Context) error {
	for {
		err := p.run(ctx)
		if !errors.Is(err, errReset) {
			return err
		}
	}
}

// errReset: the store was replaced (snapshot restore); run starts over
// from a new snapshot.
var errReset = errors.New("orchestrator: store reset")

// run places tasks from one subscription, keeping the state passes read
// up to date from its events, until ctx ends or the store is reset.
func (p *Placement) run(ctx context.Context) error {
	var st *placementState
	sub, err := p.store.ViewAndWatch(func(tx raftstore.ReadTx) error {
		st = loadPlacementState(tx)
		return nil
	})
	if err != nil {
		return err
	}
	defer sub.Cancel()
	p.mu.Lock()
	p.st, p.sub, p.reset = st, sub, false
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.st, p.sub = nil, nil
		p.mu.Unlock()
	}()
	retry := time.NewTimer(0)
	defer retry.Stop()
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	defer gap.Stop()
	var (
		waiting  bool      // a relevant change awaits a pass
		deadline time.Time // the pass starts at the latest then
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return raftstore.ErrStopped
		case <-retry.C:
		case <-sub.Ready():
			p.mu.Lock()
			rel := p.syncLocked()
			reset := p.reset
			p.mu.Unlock()
			if reset {
				return errReset
			}
			if rel {
				waiting, deadline = p.await(gap, waiting, deadline)
			}
			continue
		case <-p.poke:
			p.mu.Lock()
			reset := p.reset // met by a sync outside the loop
			p.mu.Unlock()
			if reset {
				return errReset
			}
			waiting, deadline = p.await(gap, waiting, deadline)
			continue
		case <-gap.C:
			if !waiting {
				continue
			}
		}
		waiting = false
		gap.Stop()
		p.mu.Lock()
		// Events committed since the last drain (this controller's own
		// assignments among them) must be in the state the pass reads.
		p.syncLocked()
		err := errReset
		if !p.reset {
			p.passing.Store(true)
			err = p.pass(ctx, st)
			p.passing.Store(false)
			p.passes.Add(1)
			// The pass's own assignments, in the state before PlaceNew
			// may read it; what else committed meanwhile (a node READY,
			// a task ending) may call for another pass.
			p.catchUpLocked()
		}
		reset := p.reset
		p.mu.Unlock()
		if reset {
			return errReset
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			p.log.Warn("scheduling pass failed; retrying in 1s", "err", err)
			retry.Reset(time.Second)
		}
	}
}

// await schedules a pass for a relevant change: batchGap after the last
// one, and batchMaxDelay after the first at the latest.
func (p *Placement) await(gap *time.Timer, waiting bool, deadline time.Time) (bool, time.Time) {
	now := p.now()
	if !waiting {
		waiting, deadline = true, now.Add(batchMaxDelay)
	}
	gap.Reset(min(batchGap, max(deadline.Sub(now), 0)))
	return waiting, deadline
}

// syncLocked applies the events queued on the subscription to the state,
// and reports whether any may make a pending task placeable (see
// relevant). A snapshot restore sets p.reset. Call with p.mu held.
func (p *Placement) syncLocked() bool {
	if p.st == nil || p.reset {
		return false
	}
	evs := p.sub.Drain()
	if !p.st.apply(evs) {
		p.reset = true
		p.signal() // the loop must load the state again
		return false
	}
	return relevant(evs)
}

// catchUpLocked is syncLocked outside the loop's own wait for events:
// the events it drains that call for a pass wake the loop for one. Call
// with p.mu held.
func (p *Placement) catchUpLocked() {
	if p.syncLocked() {
		p.signal()
	}
}

// PlaceNew places tasks about to be created pending (the orchestrator's,
// see raftstore.WriteTx.AssignCreated), so that they are committed ASSIGNED
// with their creation: a second command per task, and the wait for a
// pass, cost about a third of every manager's Raft apply time at 100,000
// tasks. It returns the node of each task it placed, by task ID; the
// others stay pending for the passes, which say why. Their placement
// rules are read from their own spec, which may be newer than the state's.
// assigned are the tasks the same command creates already on a node (a
// global service's): they count there first, and are returned with their
// node too, to be released alike; those whose node has no room left
// (another command placed tasks there meanwhile) are returned in full,
// to wait there pinned instead.
//
// The placed tasks count on their nodes from now on (tentatively) until
// their creation is committed, or Release drops them: so neither another
// PlaceNew nor a pass gives their room to other tasks meanwhile. Nothing
// is placed while the controller does not run.
func (p *Placement) PlaceNew(tasks, assigned []*minkepb.Task) (placed map[string]string, full []string) {
	if p.passing.Load() {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.catchUpLocked()
	if p.st == nil || p.reset {
		return nil, nil
	}
	if p.st.view == nil {
		p.st.view = scheduler.NewView(p.st.nodeInfos())
	}
	placed = make(map[string]string, len(tasks)+len(assigned))
	// Tasks the same command creates on a node of their own choosing (a
	// global service's) hold their room first, if it is there: the
	// orchestrator checked the store, which does not hold what another
	// command placed and has not committed yet.
	for _, t := range assigned {
		id, node := t.GetMeta().GetId(), t.GetNodeId()
		if _, known := p.st.tasks[id]; known || node == "" {
			continue
		}
		if !p.st.view.Fits(node, t) {
			full = append(full, id)
			continue
		}
		p.st.view.AddTask(node, t)
		p.st.setTentative(tentativeCopy(t, node))
		placed[id] = node
	}
	if len(tasks) == 0 {
		return placed, full
	}
	if len(p.st.pinned) > 0 || len(full) > 0 {
		// Global tasks wait for room on their nodes: the passes place
		// those first, as swarm does, then these.
		return placed, full
	}
	rules := map[string]scheduler.Placement{}
	byID := make(map[string]*minkepb.Task, len(tasks))
	for _, t := range tasks {
		byID[t.GetMeta().GetId()] = t
		if _, ok := rules[t.GetServiceId()]; !ok {
			rules[t.GetServiceId()] = placementOf(t.GetSpec().GetPlacement())
		}
	}
	plan := p.st.view.Schedule(tasks, func(id string) scheduler.Placement { return rules[id] })
	for _, a := range plan.Assignments {
		p.st.setTentative(tentativeCopy(byID[a.TaskID], a.NodeID))
		placed[a.TaskID] = a.NodeID
	}
	return placed, full
}

// tentativeCopy is what the scheduler reads of t (see scheduler's
// NodeInfo) as it will be stored, ASSIGNED to node.
func tentativeCopy(t *minkepb.Task, node string) *minkepb.Task {
	return &minkepb.Task{Meta: t.GetMeta(), ServiceId: t.GetServiceId(), Slot: t.GetSlot(), Spec: t.GetSpec(),
		DesiredState: t.GetDesiredState(), NodeId: node, Status: &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED}}
}

// Release drops the tentative placements of ids (see PlaceNew) whose
// creation was not committed: call it once the creating command
// returned, committed or not. The events of a committed creation replace
// its tentative placement first. Room given back starts a pass.
func (p *Placement) Release(ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.catchUpLocked()
	if p.st == nil || p.reset {
		return
	}
	freed := false
	for _, id := range ids {
		freed = p.st.dropTentative(id) || freed
	}
	if freed { // room for pending tasks, maybe
		p.signal()
	}
}

// signal wakes the loop for a pass (see poke).
func (p *Placement) signal() {
	select {
	case p.poke <- struct{}{}:
	default:
	}
}

// relevant: anything but a change of an already-assigned task's progress
// can change what is schedulable.
func relevant(evs []raftstore.Event) bool {
	for _, ev := range evs {
		t, ok := ev.Object.(*minkepb.Task)
		if !ok || ev.Kind != raftstore.EventUpdate {
			return true
		}
		if s := t.GetStatus().GetState(); s == minkepb.TaskState_PENDING || IsTerminal(s) || t.GetDesiredState() != minkepb.TaskState_RUNNING {
			return true
		}
	}
	return false
}

func pendingTask(t *minkepb.Task) bool {
	return t.GetStatus().GetState() == minkepb.TaskState_PENDING && t.GetNodeId() == "" &&
		t.GetDesiredState() == minkepb.TaskState_RUNNING
}

// activeOnNode: tasks that hold resources on their node.
func activeOnNode(t *minkepb.Task) bool {
	return t.GetNodeId() != "" && t.GetDesiredState() == minkepb.TaskState_RUNNING && !IsTerminal(t.GetStatus().GetState())
}

// schedule runs one pass on state read whole from the store.
func (p *Placement) schedule(ctx context.Context) error {
	var st *placementState
	_ = p.store.View(func(tx raftstore.ReadTx) error {
		st = loadPlacementState(tx)
		return nil
	})
	return p.pass(ctx, st)
}

// pass places st's pending tasks and commits the plan.
func (p *Placement) pass(ctx context.Context, st *placementState) error {
	if len(st.pending) == 0 && len(st.pinned) == 0 {
		return nil
	}
	nodes, pending, pinned := st.input()
	placement := st.placement
	plan := schedulePinned(nodes, pinned, placement)
	rest := scheduler.ScheduleWith(nodes, pending, placement)
	plan.Assignments = append(plan.Assignments, rest.Assignments...)
	maps.Copy(plan.Unplaced, rest.Unplaced)
	now := timestamppb.New(p.now())
	// Assignments commit in chunks: a pass over 100,000 pending tasks
	// would otherwise be one Raft entry of tens of megabytes, which every
	// manager must write and apply before any worker hears of its tasks.
	// The chunks are proposed together (a few in flight), so that Raft
	// stores and replicates them in one write instead of one after the
	// other; they touch disjoint tasks, so they never conflict.
	// Each is a compact command (raftstore.Node.Assign) that the store
	// applies only to tasks still pending on nodes still READY.
	if err := commitChunks(ctx, plan.Assignments, func(chunk []scheduler.Assignment) error {
		as := make([]*minkepb.TaskAssignment, len(chunk))
		for i, a := range chunk {
			as[i] = &minkepb.TaskAssignment{TaskId: a.TaskID, NodeId: a.NodeID}
		}
		return p.store.Assign(ctx, as, assignedMessage, now.AsTime())
	}); err != nil {
		return err
	}
	err := p.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		for _, id := range sortedKeys(plan.Unplaced) {
			t := tx.Task(id)
			why := plan.Unplaced[id]
			if t == nil || !pendingTask(t) || t.GetStatus().GetMessage() == why {
				continue
			}
			t = proto.Clone(t).(*minkepb.Task)
			t.Status.Message = why
			t.Status.Timestamp = now
			if err := tx.Update(t); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		p.log.Debug("scheduled", "assigned", len(plan.Assignments), "unplaced", len(plan.Unplaced))
	}
	return err
}

// schedulePinned places global tasks that wait for room on their node
// (see pinned) on that node alone, before other pending tasks, as swarm
// places global tasks first; the explanation of one that still does not
// fit counts that one node. Their assignments are added to nodes' tasks,
// so the pass that follows counts their reservations.
func schedulePinned(nodes []scheduler.NodeInfo, pinned map[string][]*minkepb.Task, placement func(string) scheduler.Placement) scheduler.Plan {
	plan := scheduler.Plan{Unplaced: map[string]string{}}
	for i := range nodes {
		id := nodes[i].Node.GetMeta().GetId()
		tasks := pinned[id]
		if len(tasks) == 0 {
			continue
		}
		delete(pinned, id)
		p := scheduler.ScheduleWith(nodes[i:i+1], tasks, placement)
		byID := map[string]*minkepb.Task{}
		for _, t := range tasks {
			byID[t.GetMeta().GetId()] = t
		}
		held := slices.Clone(nodes[i].Tasks)
		for _, a := range p.Assignments {
			t := proto.Clone(byID[a.TaskID]).(*minkepb.Task)
			t.NodeId = id
			t.Status = &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED}
			held = append(held, t)
		}
		nodes[i].Tasks = held
		plan.Assignments = append(plan.Assignments, p.Assignments...)
		maps.Copy(plan.Unplaced, p.Unplaced)
	}
	// The orchestrator removes the tasks of a node that is gone; until
	// then they wait.
	for id, tasks := range pinned {
		for _, t := range tasks {
			plan.Unplaced[t.GetMeta().GetId()] = "no suitable node (node " + id + " is gone)"
		}
	}
	return plan
}

// assignedMessage is the status message of a task the scheduler placed.
const assignedMessage = "scheduler assigned task to node"

// maxAssignmentsPerCommand bounds the assignments one Raft command carries
// (about 1 MB of tasks); chunksInFlight bounds the commands proposed at
// once by one pass.
const (
	maxAssignmentsPerCommand = 2000
	chunksInFlight           = 8
)

// commitChunks runs commit over as in chunks of maxAssignmentsPerCommand,
// at most chunksInFlight at a time, and returns the first error.
func commitChunks(ctx context.Context, as []scheduler.Assignment, commit func([]scheduler.Assignment) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	slots := make(chan struct{}, chunksInFlight)
	for chunk := range slices.Chunk(as, maxAssignmentsPerCommand) {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			if err := commit(chunk); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// placementOf turns a spec's placement into the scheduler's rules. The
// Control API refuses invalid expressions, so stored specs parse; one that
// does not (written by a newer manager) becomes a constraint no node meets,
// so the tasks wait rather than land where they must not.
func placementOf(p *minkepb.Placement) scheduler.Placement {
	var out scheduler.Placement
	for _, c := range p.GetConstraints() {
		pc, _ := scheduler.ParseConstraint(c) // the zero Constraint matches no node
		out.Constraints = append(out.Constraints, pc)
	}
	for _, pref := range p.GetPreferences() {
		if pp, err := scheduler.ParsePreference(pref); err == nil {
			out.Preferences = append(out.Preferences, pp)
		}
	}
	out.MaxReplicasPerNode = p.GetMaxReplicasPerNode()
	return out
}
