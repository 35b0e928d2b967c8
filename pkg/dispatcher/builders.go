package dispatcher

import (
	"context"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Sessions' messages after the first are built by a few builder
// goroutines (sessionBuilders), which take due sessions from one queue,
// and sent by the session's own goroutine (a worker that reads slowly
// blocks only its own session, never a builder). A
// commit that places 2,000 tasks used to wake 2,000 session goroutines,
// and a network-wide change every one of 5,000; on a busy manager those
// thousands of runnable goroutines sat in the Go scheduler's run queues
// ahead of the Raft goroutines, whose applies then spent three quarters
// of their wall time waiting to be scheduled (a runtime trace of
// `make bench-scheduler`). Queued, a wake is a flag and a list entry; the
// session's own goroutine only waits for its end and sends log
// subscriptions and the messages built for it.

// session is one open Session stream, as the builders see it.
type session struct {
	d      *Dispatcher
	nodeID string
	ctx    context.Context
	// out carries a built message to the session's goroutine, which sends
	// it and then calls built: a session has at most one message out, so
	// a builder never waits on it.
	out chan *outgoing
	// failed receives why a build ended the session (the node was removed,
	// its certificate is no longer trusted).
	failed chan error

	// st and checked are used by one builder at a time (building).
	st      sessionState
	checked *minkepb.Cluster // the cluster record whose roots last passed stillTrusted

	mu sync.Mutex
	// pending: a change arrived since the last build began; wide: one of
	// them was network-wide (for the metrics and netWideDelay); urgent:
	// one of them must not wait for the pace (see urgentNetworkChange).
	pending, wide, urgent bool
	// queued: in the queue; building: a builder is at it, or the message
	// it built (or the handler's first) is not sent yet; timed: paceTimer
	// will queue it.
	queued, building, timed bool
	closed                  bool
	lastBuilt               time.Time
	paceTimer               *time.Timer
}

// wake records a change for the session (wide: a network-wide one) and
// queues it, at once or when its pace allows (see sessionPace; an urgent
// change does not wait for it). The fan-out calls it under its lock: it
// never blocks.
func (s *session) wake(wide, urgent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = true
	s.wide = s.wide || wide
	s.urgent = s.urgent || urgent
	s.schedule()
}

// schedule queues a pending session that is neither queued nor being
// built, unless it must wait for its pace (mu held).
func (s *session) schedule() {
	if !s.pending || s.closed || s.queued || s.building || (s.timed && !s.urgent) {
		return
	}
	if !s.urgent {
		if wait := s.d.sessionPace() - time.Since(s.lastBuilt); wait > 0 {
			s.timed = true
			if s.paceTimer == nil {
				s.paceTimer = time.AfterFunc(wait, s.paced)
			} else {
				s.paceTimer.Reset(wait)
			}
			return
		}
	}
	if s.timed {
		// An urgent change overtakes the pace; should the timer fire
		// anyway, paced finds the session queued.
		s.paceTimer.Stop()
		s.timed = false
	}
	s.queued = true
	s.d.queue.push(s)
}

func (s *session) paced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timed = false
	s.schedule()
}

// built marks the end of a build: a change that arrived meanwhile
// schedules the next.
func (s *session) built() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.building, s.lastBuilt = false, time.Now()
	s.schedule()
}

// close keeps the builders off the session once its handler returns.
func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.paceTimer != nil {
		s.paceTimer.Stop()
	}
}

// build hands the session's goroutine its next message, if anything its
// worker acts on changed; an error ends the session.
func (s *session) build() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.queued, s.building = false, true
	wide := s.wide
	s.pending, s.wide, s.urgent = false, false, false
	s.mu.Unlock()

	d := s.d
	began := time.Now()
	if wide {
		d.metrics.networkWakes.Inc()
	} else {
		d.metrics.nodeWakes.Inc()
	}
	gone := false
	var trustErr error
	var msg *outgoing
	epoch := d.fan.netEpoch.Load() // before the read: see netCache.get
	_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error {
		if gone = tx.Node(s.nodeID) == nil; gone {
			return nil
		}
		// Stored objects are immutable: the same Cluster pointer is the
		// same trust bundle, already checked (a signature check per wake
		// was a sixth of the manager's CPU at scale).
		if c := tx.Cluster(); c != s.checked {
			if trustErr = stillTrusted(s.ctx, c); trustErr != nil {
				return nil
			}
			s.checked = c
		}
		msg = d.nextMessage(tx, &s.st, epoch)
		return nil
	})
	if wide {
		d.net.fanning.Add(int64(time.Since(began)))
	}
	switch {
	case gone:
		return nodeNotFound(s.nodeID) // removed from the cluster
	case trustErr != nil:
		d.log.Info("ending a session whose certificate the cluster no longer trusts", "node_id", s.nodeID, "err", trustErr)
		return status.Error(codes.Unavailable, trustErr.Error())
	case msg == nil:
		s.built()
	default:
		s.out <- msg // never blocks: see out
	}
	return nil
}

// sessionQueue holds the sessions due for a build, first come first
// served; a session is in it at most once (session.queued).
type sessionQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	items   []*session
	stopped bool
}

func newSessionQueue() *sessionQueue {
	q := &sessionQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *sessionQueue) push(s *session) {
	q.mu.Lock()
	q.items = append(q.items, s)
	q.mu.Unlock()
	q.cond.Signal()
}

// pop waits for a session; false once the queue is stopped.
func (q *sessionQueue) pop() (*session, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.stopped {
		q.cond.Wait()
	}
	if q.stopped {
		return nil, false
	}
	s := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil // let the backing array go
	}
	return s, true
}

func (q *sessionQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// runBuilders builds queued sessions' messages on sessionBuilders
// goroutines until ctx ends, at a lower priority than the rest of the
// manager (see the yield below).
func (d *Dispatcher) runBuilders(ctx context.Context) {
	stop := context.AfterFunc(ctx, d.queue.stop)
	defer stop()
	var wg sync.WaitGroup
	for range sessionBuilders() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s, ok := d.queue.pop()
				if !ok {
					return
				}
				if err := s.build(); err != nil {
					select {
					case s.failed <- err:
					default: // already ending
					}
				}
				// Yield after each session: a builder is CPU-bound while
				// the queue is long, and Go's scheduler would share the
				// CPUs evenly between it and the Raft, orchestrator and
				// scheduler goroutines. Yielded, it goes to the back of
				// the global run queue and builds when they are idle;
				// the sessions that wait meanwhile merge their wakes
				// (bench-scheduler: 11,500 messages instead of 50,000,
				// and all tasks ASSIGNED in 15 s instead of 22 s).
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
}

// leaderLost returns a channel that is closed once this manager is found
// not to lead (checked every second by watchLeadership): sessions then
// end, so that workers reconnect to the leader. One check for all
// sessions, not a timer each: 5,000 sessions' timers woke 5,000
// goroutines a second. A session that opens after leadership came back,
// before the next check, gets a fresh channel.
func (d *Dispatcher) leaderLost() <-chan struct{} {
	d.leaderMu.Lock()
	defer d.leaderMu.Unlock()
	if d.notLeaderClosed {
		d.setLeading(d.cfg.IsLeader())
	}
	return d.notLeader
}

// setLeading closes the leaderLost channel when leader is false, and opens
// a new one when it is true and the current one is closed (leaderMu held).
func (d *Dispatcher) setLeading(leader bool) {
	switch {
	case !leader && !d.notLeaderClosed:
		close(d.notLeader)
		d.notLeaderClosed = true
	case leader && d.notLeaderClosed:
		d.notLeader, d.notLeaderClosed = make(chan struct{}), false
	}
}

// watchLeadership closes the current leaderLost channel whenever this
// manager does not lead, and opens a new one once it does again.
func (d *Dispatcher) watchLeadership(ctx context.Context) {
	if d.cfg.IsLeader == nil {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		leader := d.cfg.IsLeader()
		d.leaderMu.Lock()
		d.setLeading(leader)
		d.leaderMu.Unlock()
	}
}
