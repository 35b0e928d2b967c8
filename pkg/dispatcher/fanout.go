package dispatcher

import (
	"context"
	"errors"
	"sync"

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
	started  chan struct{} // closed once run has subscribed
	mu       sync.Mutex
	running  bool
	watchers map[string]map[*nodeWatch]struct{} // by node ID
}

// nodeWatch is one session's interest in its node. ready is signalled
// (without blocking) after a commit that touched the node; done is closed
// when the fan-out stops.
type nodeWatch struct {
	nodeID string
	ready  chan struct{}
	done   chan struct{}
}

func newFanout() *fanout {
	return &fanout{started: make(chan struct{}), watchers: map[string]map[*nodeWatch]struct{}{}}
}

// watch registers interest in nodeID, waiting for run to start if need be.
// Every change committed after watch returns signals the watch, so a
// session that reads the store after watching misses nothing.
func (f *fanout) watch(ctx context.Context, nodeID string) (*nodeWatch, error) {
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
	w := &nodeWatch{nodeID: nodeID, ready: make(chan struct{}, 1), done: make(chan struct{})}
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

// run routes changes until ctx ends or the store stops; then every watch's
// done is closed and later watches fail.
func (f *fanout) run(ctx context.Context, store Store) error {
	sub, err := store.ViewAndWatch(nil)
	if err != nil {
		return err
	}
	defer sub.Cancel()
	f.mu.Lock()
	f.running = true
	f.mu.Unlock()
	close(f.started)
	defer f.stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return raftstore.ErrStopped
		case <-sub.Ready():
			f.route(sub.Drain())
		}
	}
}

func (f *fanout) route(evs []raftstore.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	signal := func(nodeID string) {
		for w := range f.watchers[nodeID] {
			select {
			case w.ready <- struct{}{}:
			default:
			}
		}
	}
	all := false // every session: a reset, or a change to network state
	for _, ev := range evs {
		switch o := ev.Object.(type) {
		case *minkepb.Task:
			if id := o.GetNodeId(); id != "" {
				signal(id)
			}
		case *minkepb.Node:
			signal(o.GetMeta().GetId())
		}
		if ev.Kind == raftstore.EventReset || networkWide(ev) {
			all = true
		}
	}
	if all {
		for id := range f.watchers {
			signal(id)
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
