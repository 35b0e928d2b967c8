package raftstore

import (
	"context"
	"sync"

	"google.golang.org/protobuf/proto"
)

// EventKind says what happened to an object.
type EventKind int

// Event kinds. The first three equal minkepb.StoreAction_Kind values.
const (
	EventCreate EventKind = iota
	EventUpdate
	EventRemove
	// EventReset: the state was replaced (snapshot restore); re-read it.
	EventReset
)

// Event is one committed change. Object is the stored value after the change
// (for removals, the value as removed); it is shared and must not be changed.
type Event struct {
	Kind   EventKind
	Object proto.Message
	Index  uint64
}

// Subscription queues events without bound so that applying a command never
// waits for a slow reader; readers take all queued events at once, which
// debounces bursts.
type Subscription struct {
	mu       sync.Mutex
	queue    []Event
	notify   chan struct{}
	done     chan struct{}
	once     sync.Once
	onCancel func(*Subscription)
}

func newSubscription(onCancel func(*Subscription)) *Subscription {
	return &Subscription{notify: make(chan struct{}, 1), done: make(chan struct{}), onCancel: onCancel}
}

func (s *Subscription) publish(events []Event) {
	s.mu.Lock()
	s.queue = append(s.queue, events...)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Ready is signalled when events may be queued; call Drain after it fires.
func (s *Subscription) Ready() <-chan struct{} { return s.notify }

// Done is closed once the subscription is cancelled.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Drain returns and clears the queued events (possibly none).
func (s *Subscription) Drain() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.queue
	s.queue = nil
	return out
}

// Next blocks until at least one event is queued and returns all queued
// events. It returns ctx.Err() when ctx ends, or ErrStopped once cancelled.
func (s *Subscription) Next(ctx context.Context) ([]Event, error) {
	for {
		if evs := s.Drain(); len(evs) > 0 {
			return evs, nil
		}
		select {
		case <-s.notify:
		case <-s.done:
			return nil, ErrStopped
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Cancel stops the subscription; Next returns ErrStopped afterwards.
func (s *Subscription) Cancel() {
	s.once.Do(func() {
		close(s.done)
		s.onCancel(s)
	})
}
