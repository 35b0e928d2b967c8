package membership

import (
	"sync"

	"github.com/hashicorp/memberlist"
)

// EventKind says what happened to a member.
type EventKind int

const (
	// Join: a node became alive (including the local node at start).
	Join EventKind = iota + 1
	// Leave: a node left gracefully or was declared dead.
	Leave
	// Update: a node changed its meta or address.
	Update
)

func (k EventKind) String() string {
	switch k {
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Update:
		return "update"
	default:
		return "unknown"
	}
}

// Event is one membership change.
type Event struct {
	Kind   EventKind
	NodeID string
	// Addr is the member's gossip address, host:port.
	Addr string
	Meta Meta
}

// eventQueue is a bounded channel that never blocks the sender: when it is
// full, the oldest event is dropped to make room. Consumers that fall behind
// lose history, not the present, and can always re-read Members().
type eventQueue struct {
	mu      sync.Mutex
	ch      chan Event
	closed  bool
	dropped uint64
}

func newEventQueue(size int) *eventQueue {
	return &eventQueue{ch: make(chan Event, size)}
}

// push enqueues ev, dropping the oldest queued event if the buffer is full.
// It reports whether an event was dropped. After close, push does nothing.
func (q *eventQueue) push(ev Event) (dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	for {
		select {
		case q.ch <- ev:
			return dropped
		default:
		}
		select {
		case <-q.ch:
			q.dropped++
			dropped = true
		default:
		}
	}
}

func (q *eventQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
}

// delegate receives memberlist's callbacks. memberlist never calls the
// event methods concurrently, and they must not block for long.
type delegate struct {
	m *Membership
}

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
)

func (d delegate) NodeMeta(limit int) []byte {
	b := d.m.encodedMeta()
	if len(b) > limit {
		// validate() keeps meta under memberlist.MetaMaxSize; a smaller
		// limit would be a memberlist change, and sending nothing beats
		// memberlist's panic on oversized meta.
		d.m.logger.Error("node meta exceeds limit; sending none", "size", len(b), "limit", limit)
		return nil
	}
	return b
}

func (delegate) NotifyMsg([]byte)                    {}
func (delegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (delegate) LocalState(bool) []byte              { return nil }
func (delegate) MergeRemoteState(buf []byte, _ bool) {}

func (d delegate) NotifyJoin(n *memberlist.Node)   { d.m.emit(Join, n) }
func (d delegate) NotifyLeave(n *memberlist.Node)  { d.m.emit(Leave, n) }
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.m.emit(Update, n) }
