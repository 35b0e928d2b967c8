package dispatcher

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// errNotRunning: a session arrived before Run started the fan-out, or after
// it stopped.
var errNotRunning = errors.New("dispatcher: not running")

// fanout routes committed changes to the sessions of the nodes they touch.
// One store subscription serves every session, so a commit costs work in
// proportion to its own events, not to its events times the number of
// sessions: with 5,000 sessions, per-session subscriptions would copy and
// scan each event 5,000 times.
type fanout struct {
	started chan struct{} // closed once run has subscribed
	// assigned is, per task on a node, what a session sends of it (see
	// assignment). A task event that leaves it unchanged — the node's own
	// status reports, most of the commits touching a node — wakes no
	// session. Only run's goroutine uses it.
	assigned map[string]assignment
	mu       sync.Mutex
	running  bool
	watchers map[string]map[*nodeWatch]struct{} // by node ID
	// netEpoch counts changes to cluster-wide network state (see
	// networkWide and netCache); it moves before the sessions are woken.
	netEpoch atomic.Uint64
}

// nodeWatch is one session's interest in its node. wake is called (under
// the fan-out's lock; it must not block) after a commit that touched the
// node, with wide set for a network-wide change (signalAll), so that the
// session counts what it costs (see netCache.netWideDelay), and urgent
// for one that must not wait for the session's pace; done is closed when
// the fan-out stops.
type nodeWatch struct {
	nodeID string
	wake   func(wide, urgent bool)
	done   chan struct{}
}

func newFanout() *fanout {
	return &fanout{started: make(chan struct{}), watchers: map[string]map[*nodeWatch]struct{}{}}
}

// watch registers interest in nodeID, waiting for run to start if need be.
// Every change committed after watch returns signals the watch, so a
// session that reads the store after watching misses nothing.
func (f *fanout) watch(ctx context.Context, nodeID string, wake func(wide, urgent bool)) (*nodeWatch, error) {
	select {
	case <-f.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running {
		return nil, errNotRunning
	}
	w := &nodeWatch{nodeID: nodeID, wake: wake, done: make(chan struct{})}
	if f.watchers[nodeID] == nil {
		f.watchers[nodeID] = map[*nodeWatch]struct{}{}
	}
	f.watchers[nodeID][w] = struct{}{}
	return w, nil
}

func (f *fanout) unwatch(w *nodeWatch) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ws := f.watchers[w.nodeID]; ws != nil {
		delete(ws, w)
		if len(ws) == 0 {
			delete(f.watchers, w.nodeID)
		}
	}
}

// assignment is what a session message carries of a task that the node
// acts on (see versions): where it is and whether it should run.
type assignment struct {
	nodeID  string
	desired minkepb.TaskState
}

// load records every assigned task's assignment from a snapshot.
func (f *fanout) load(tx raftstore.ReadTx) {
	f.assigned = map[string]assignment{}
	for _, t := range tx.Tasks() {
		if t.GetNodeId() != "" {
			f.assigned[t.GetMeta().GetId()] = assignment{t.GetNodeId(), t.GetDesiredState()}
		}
	}
}

// run routes changes until ctx ends or the store stops; then every watch's
// done is closed and later watches fail.
//
// delay says how long network-wide changes gather before every session is
// woken for them (see netCache.netWideDelay); a change that only adds to
// the network state (see urgentNetworkChange) may gather for relaxed
// instead, when that is longer: at 5,000 nodes each round of wakes is
// 5,000 messages, and creating 1,000 services made a round every half
// second, each carrying a few new DNS records.
func (f *fanout) run(ctx context.Context, store Store, delay, relaxed func() time.Duration) error {
	sub, err := store.ViewAndWatch(func(tx raftstore.ReadTx) error { f.load(tx); return nil })
	if err != nil {
		return err
	}
	defer sub.Cancel()
	f.mu.Lock()
	f.running = true
	f.mu.Unlock()
	close(f.started)
	defer f.stop()
	// wide fires at due, after the first network-wide change that has not
	// woken every session yet (see route); armedAt and fast are when it
	// was armed and the delay an urgent change gets from then.
	wide := time.NewTimer(time.Hour)
	wide.Stop()
	defer wide.Stop()
	var (
		due, armedAt time.Time // due is zero when nothing is pending
		fast         time.Duration
		urgentDue    bool // an urgent change is pending
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return raftstore.ErrStopped
		case <-wide.C:
			f.netEpoch.Add(1)
			f.signalAll(urgentDue)
			due, urgentDue = time.Time{}, false
		case <-sub.Ready():
			evs := sub.Drain()
			if reset := slices.ContainsFunc(evs, func(ev raftstore.Event) bool { return ev.Kind == raftstore.EventReset }); reset {
				_ = store.View(func(tx raftstore.ReadTx) error { f.load(tx); return nil })
				f.netEpoch.Add(1)
				f.signalAll(true)
				continue
			}
			all, urgent := f.route(evs)
			if !all {
				continue
			}
			now := time.Now()
			if due.IsZero() {
				armedAt, fast = now, delay()
				due = armedAt.Add(fast)
				if !urgent {
					due = armedAt.Add(max(fast, relaxed()))
				}
				wide.Reset(due.Sub(now))
			} else if urgent && armedAt.Add(fast).Before(due) {
				due = armedAt.Add(fast)
				wide.Reset(max(due.Sub(now), 0))
			}
			urgentDue = urgentDue || urgent
		}
	}
}

// route wakes the sessions of the nodes whose assignments the events
// changed: a task created on, removed from or newly placed on a node, a
// change of its desired state, or any change of the node itself. It
// reports whether any event changed cluster-wide state (see networkWide),
// for which run wakes every session, and whether any such change was
// urgent (see urgentNetworkChange and run).
func (f *fanout) route(evs []raftstore.Event) (all, urgent bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range evs {
		if networkWide(ev) {
			all = true
			urgent = urgent || urgentNetworkChange(ev)
		}
		switch o := ev.Object.(type) {
		case *minkepb.Task:
			id := o.GetMeta().GetId()
			old, had := f.assigned[id]
			now := assignment{o.GetNodeId(), o.GetDesiredState()}
			switch {
			case ev.Kind == raftstore.EventRemove:
				delete(f.assigned, id)
				now = assignment{}
			case now.nodeID == "":
				delete(f.assigned, id)
			default:
				f.assigned[id] = now
			}
			if had && old == now {
				continue
			}
			if had {
				f.signal(old.nodeID)
			}
			if now.nodeID != "" && now.nodeID != old.nodeID {
				f.signal(now.nodeID)
			}
		case *minkepb.Node:
			f.signal(o.GetMeta().GetId())
		}
	}
	return all, urgent
}

// signal wakes nodeID's sessions (mu held).
func (f *fanout) signal(nodeID string) {
	for w := range f.watchers[nodeID] {
		w.wake(false, false)
	}
}

// signalAll wakes every session for a network-wide change; urgent ones
// skip the sessions' pace (see urgentNetworkChange).
func (f *fanout) signalAll(urgent bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ws := range f.watchers {
		for w := range ws {
			w.wake(true, urgent)
		}
	}
}

func (f *fanout) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running = false
	for _, ws := range f.watchers {
		for w := range ws {
			close(w.done)
		}
	}
	f.watchers = map[string]map[*nodeWatch]struct{}{}
}
