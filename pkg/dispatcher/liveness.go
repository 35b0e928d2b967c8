package dispatcher

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// DefaultSessionGracePeriod is how long a node that does not gossip may be
// without a session before the leader marks it DOWN: long enough for a
// worker to reconnect to a new leader (its backoff is at most 2s), and
// close to swarm's 15s heartbeat TTL.
const DefaultSessionGracePeriod = 10 * time.Second

// liveness turns Dispatcher sessions into node state. It is the second
// path to READY, next to gossip, and the one swarm uses for every node: a
// node that holds a session with the leader is alive and connected, so it
// is marked READY when the session opens. Gossip stays the fast path to
// DOWN (about a second, against a session's keepalive of ~15s): a node
// that gossips is marked DOWN only by gossip. A node that does not gossip
// (simulated nodes, which act as thousands of nodes in one process) is
// marked DOWN once it has held no session for the grace period.
//
// State changes are group-committed: the sessions of thousands of nodes
// opening at once (a new leader, a scale test) cost a few Raft commands,
// not one each.
type liveness struct {
	store    Store
	gossips  func(nodeID string) bool
	isLeader func() bool
	grace    time.Duration
	log      *slog.Logger

	mu       sync.Mutex
	sessions map[string]int       // open sessions per node
	closedAt map[string]time.Time // nodes whose last session closed, and when
	pending  map[string]bool      // node ID -> true: mark READY, false: DOWN
	kick     chan struct{}
}

func newLiveness(cfg Config, log *slog.Logger) *liveness {
	l := &liveness{store: cfg.Store, gossips: cfg.Gossiping, isLeader: cfg.IsLeader, grace: cfg.SessionGracePeriod, log: log,
		sessions: map[string]int{}, closedAt: map[string]time.Time{}, pending: map[string]bool{}, kick: make(chan struct{}, 1)}
	if l.grace <= 0 {
		l.grace = DefaultSessionGracePeriod
	}
	return l
}

// opened records a session of nodeID and has the node marked READY.
func (l *liveness) opened(nodeID string) {
	l.mu.Lock()
	l.sessions[nodeID]++
	delete(l.closedAt, nodeID)
	l.pending[nodeID] = true
	l.mu.Unlock()
	l.signal()
}

// closed records the end of a session of nodeID.
func (l *liveness) closed(nodeID string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions[nodeID]--; l.sessions[nodeID] <= 0 {
		delete(l.sessions, nodeID)
		l.closedAt[nodeID] = now
	}
}

// hasSession reports whether nodeID holds a session with this manager.
func (l *liveness) hasSession(nodeID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sessions[nodeID] > 0
}

func (l *liveness) signal() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// expire moves nodes that have been without a session for the grace
// period, and do not gossip, to pending DOWN.
func (l *liveness) expire(now time.Time) {
	l.mu.Lock()
	var lost []string
	for id, at := range l.closedAt {
		if now.Sub(at) >= l.grace {
			delete(l.closedAt, id)
			lost = append(lost, id)
		}
	}
	l.mu.Unlock()
	var down []string
	for _, id := range lost {
		if l.gossips == nil || !l.gossips(id) {
			down = append(down, id)
		}
	}
	if len(down) == 0 {
		return
	}
	l.mu.Lock()
	for _, id := range down {
		if l.sessions[id] == 0 { // not reconnected meanwhile
			l.pending[id] = false
		}
	}
	l.mu.Unlock()
	l.signal()
}

// run commits pending node states until ctx ends. A batch that fails
// while this manager leads is tried again a second later (no later event
// need come: a node without gossip that keeps its session has none);
// one pending when this manager does not lead is dropped, as its
// sessions end and the next leader's sessions decide.
func (l *liveness) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			l.expire(now)
			l.reassert()
		case <-l.kick:
		}
		l.mu.Lock()
		batch := l.pending
		l.pending = map[string]bool{}
		l.mu.Unlock()
		if len(batch) == 0 || (l.isLeader != nil && !l.isLeader()) {
			continue
		}
		if err := l.commit(ctx, batch); err != nil && ctx.Err() == nil {
			l.log.Warn("recording node liveness failed; retrying in 1s", "nodes", len(batch), "err", err)
			l.mu.Lock()
			for id, ready := range batch {
				if _, newer := l.pending[id]; !newer {
					l.pending[id] = ready
				}
			}
			l.mu.Unlock()
		}
	}
}

// GossipDownMessage is the status message of a node gossip found gone
// (it left, or failed its probes). Gossip is the fast path to DOWN: such a
// node stays DOWN though its session may last until keepalives notice, up
// to about 15 s (a frozen or powered-off host), and is READY again when
// gossip or a new session says so.
const GossipDownMessage = "left or failed gossip probes"

// reassert queues READY for every node that holds a session with this
// leader but is stored otherwise, unless gossip marked it DOWN (see
// GossipDownMessage). A session's READY is committed once,
// when it opens; a DOWN committed after it by another path (a new
// leader's gossip check that read the session as not yet open, a
// previous leader's late batch) would otherwise stand for as long as the
// session lasts, and a node without gossip would get no task again
// (make bench-scheduler with 3 managers hit that after leader changes).
// It reads one node record per session, once a second.
func (l *liveness) reassert() {
	if l.isLeader != nil && !l.isLeader() {
		return
	}
	l.mu.Lock()
	ids := make([]string, 0, len(l.sessions))
	for id := range l.sessions {
		ids = append(ids, id)
	}
	l.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	var stale []string
	_ = l.store.View(func(tx raftstore.ReadTx) error {
		for _, id := range ids {
			n := tx.Node(id)
			if n != nil && n.GetStatus().GetState() != minkepb.NodeStatus_READY && n.GetStatus().GetMessage() != GossipDownMessage {
				stale = append(stale, id)
			}
		}
		return nil
	})
	if len(stale) == 0 {
		return
	}
	l.mu.Lock()
	for _, id := range stale {
		if _, queued := l.pending[id]; !queued && l.sessions[id] > 0 {
			l.pending[id] = true
		}
	}
	l.mu.Unlock()
	l.log.Info("nodes that hold a session were not READY; marking them READY again", "nodes", len(stale))
}

func (l *liveness) commit(ctx context.Context, batch map[string]bool) error {
	ids := make([]string, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return l.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		for _, id := range ids {
			state, msg := minkepb.NodeStatus_READY, "session open"
			if !batch[id] {
				state, msg = minkepb.NodeStatus_DOWN, "no session for "+l.grace.String()+" and not in gossip"
			}
			n := tx.Node(id)
			if n == nil || !NodeStateChange(n, state, time.Now()) {
				continue
			}
			n = proto.Clone(n).(*minkepb.Node)
			if n.Status == nil {
				n.Status = &minkepb.NodeStatus{}
			}
			n.Status.State, n.Status.Message = state, msg
			n.Status.RestartDeadline = nil // back (READY), or DOWN past its hold
			if err := tx.Update(n); err != nil {
				return err
			}
		}
		return nil
	})
}
