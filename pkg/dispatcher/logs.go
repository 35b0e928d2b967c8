package dispatcher

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// LogStartTimeout is how long a worker has to start answering a log
// subscription before its tasks are reported as unavailable.
const LogStartTimeout = 5 * time.Second

// LogBroker routes log subscriptions from Control.ServiceLogs to the workers
// that run the tasks (down their sessions) and the workers' PublishLogs
// streams back to the subscriber.
type LogBroker struct {
	log      *slog.Logger
	mu       sync.Mutex
	sessions map[string]chan *minkepb.LogSubscription
	subs     map[string]*logSub
}

// logSub is one subscriber's state. out is closed, and done with it, once:
// when the subscriber leaves or every node has finished.
type logSub struct {
	ctx  context.Context
	out  chan []*minkepb.LogMessage
	done chan struct{}

	mu      sync.Mutex
	closed  bool
	nodes   map[string][]*minkepb.Task // nodes asked, with their tasks
	started map[string]bool            // nodes that began answering
	pending int                        // nodes that have not finished
}

func newLogBroker(log *slog.Logger) *LogBroker {
	return &LogBroker{log: log, sessions: map[string]chan *minkepb.LogSubscription{}, subs: map[string]*logSub{}}
}

func (b *LogBroker) attach(nodeID string) chan *minkepb.LogSubscription {
	ch := make(chan *minkepb.LogSubscription, 16)
	b.mu.Lock()
	b.sessions[nodeID] = ch
	b.mu.Unlock()
	return ch
}

func (b *LogBroker) detach(nodeID string, ch chan *minkepb.LogSubscription) {
	b.mu.Lock()
	if b.sessions[nodeID] == ch {
		delete(b.sessions, nodeID)
	}
	b.mu.Unlock()
}

// Subscribe asks the workers holding tasks for their logs, with the
// Follow, Tail and Since of opts (its Id and TaskIds are ignored). The returned
// channel is closed when every worker has sent what it has (without follow)
// or when ctx ends. Tasks whose node has no session here, or does not start
// answering within LogStartTimeout, are returned in or sent on the channel
// as a one-line notice in place of their logs.
func (b *LogBroker) Subscribe(ctx context.Context, tasks []*minkepb.Task, opts *minkepb.LogSubscription) (<-chan []*minkepb.LogMessage, []*minkepb.LogMessage) {
	byNode := map[string][]*minkepb.Task{}
	var order []string
	for _, t := range tasks {
		if t.GetNodeId() == "" {
			continue
		}
		if _, ok := byNode[t.GetNodeId()]; !ok {
			order = append(order, t.GetNodeId())
		}
		byNode[t.GetNodeId()] = append(byNode[t.GetNodeId()], t)
	}
	id := raftstore.NewID()
	sub := &logSub{ctx: ctx, out: make(chan []*minkepb.LogMessage, 64), done: make(chan struct{}),
		nodes: map[string][]*minkepb.Task{}, started: map[string]bool{}}
	var unavailable []*minkepb.LogMessage
	b.mu.Lock()
	for _, node := range order {
		ids := make([]string, len(byNode[node]))
		for i, t := range byNode[node] {
			ids[i] = t.GetMeta().GetId()
		}
		sent := false
		if ch, ok := b.sessions[node]; ok {
			select {
			case ch <- &minkepb.LogSubscription{Id: id, TaskIds: ids, Follow: opts.GetFollow(), Tail: opts.Tail, Since: opts.GetSince()}:
				sent = true
			default:
			}
		}
		if !sent {
			unavailable = append(unavailable, notices(byNode[node], "node is not connected to this manager")...)
			continue
		}
		sub.nodes[node] = byNode[node]
		sub.pending++
	}
	b.subs[id] = sub
	b.mu.Unlock()
	if sub.pending == 0 {
		b.finish(id)
		return sub.out, unavailable
	}
	context.AfterFunc(ctx, func() { b.finish(id) })
	time.AfterFunc(LogStartTimeout, func() { b.giveUpSilent(id, sub) })
	return sub.out, unavailable
}

func notices(tasks []*minkepb.Task, why string) []*minkepb.LogMessage {
	out := make([]*minkepb.LogMessage, len(tasks))
	for i, t := range tasks {
		out[i] = &minkepb.LogMessage{ServiceId: t.GetServiceId(), TaskId: t.GetMeta().GetId(), NodeId: t.GetNodeId(),
			Slot: t.GetSlot(), Data: []byte("error: logs unavailable: " + why + "\n")}
	}
	return out
}

// giveUpSilent counts nodes that never started answering as done, with a
// notice for their tasks.
func (b *LogBroker) giveUpSilent(id string, sub *logSub) {
	sub.mu.Lock()
	var silent []string
	for node := range sub.nodes {
		if !sub.started[node] {
			silent = append(silent, node)
			sub.started[node] = true // no second notice
		}
	}
	sub.mu.Unlock()
	for _, node := range silent {
		if !b.deliver(sub, notices(sub.nodes[node], "the node did not answer")) {
			return
		}
		b.nodeDone(id, sub)
	}
}

// finish closes a subscription once (ctx end, or all nodes done).
func (b *LogBroker) finish(id string) {
	b.mu.Lock()
	sub, ok := b.subs[id]
	delete(b.subs, id)
	b.mu.Unlock()
	if !ok {
		return
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.closed {
		sub.closed = true
		close(sub.done)
		close(sub.out)
	}
}

func (b *LogBroker) lookup(id string) *logSub {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subs[id]
}

// PublishLogs receives one worker's answer to one subscription. It ends the
// worker's stream as soon as the subscriber goes away, even if the worker
// has nothing to send.
func (d *Dispatcher) PublishLogs(stream minkepb.Dispatcher_PublishLogsServer) error {
	nodeID, err := d.authenticateNode(stream.Context())
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	id := first.GetSubscriptionId()
	sub := d.Logs.lookup(id)
	if sub == nil {
		return status.Errorf(codes.NotFound, "log subscription %q is over", id)
	}
	sub.mu.Lock()
	_, asked := sub.nodes[nodeID]
	late := sub.started[nodeID]
	sub.started[nodeID] = true
	sub.mu.Unlock()
	if !asked {
		return status.Errorf(codes.PermissionDenied, "log subscription %q was not sent to node %s", id, nodeID)
	}
	if late {
		return status.Errorf(codes.DeadlineExceeded, "log subscription %q: node %s answered too late", id, nodeID)
	}
	msgs := make(chan *minkepb.PublishLogsMessage)
	errc := make(chan error, 1)
	go func() {
		msg := first
		for {
			select {
			case msgs <- msg:
			case <-sub.done:
				return
			}
			var err error
			if msg, err = stream.Recv(); err != nil {
				errc <- err
				return
			}
		}
	}()
	for {
		select {
		case <-sub.done:
			return stream.SendAndClose(&minkepb.PublishLogsResponse{})
		case err := <-errc:
			d.Logs.nodeDone(id, sub)
			if errors.Is(err, io.EOF) {
				return stream.SendAndClose(&minkepb.PublishLogsResponse{})
			}
			return err
		case msg := <-msgs:
			if len(msg.GetMessages()) > 0 && !d.Logs.deliver(sub, msg.GetMessages()) {
				return stream.SendAndClose(&minkepb.PublishLogsResponse{})
			}
		}
	}
}

// deliver hands messages to the subscriber; false means it is gone.
func (b *LogBroker) deliver(sub *logSub, msgs []*minkepb.LogMessage) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return false
	}
	select {
	case sub.out <- msgs:
		return true
	case <-sub.ctx.Done():
		return false
	}
}

func (b *LogBroker) nodeDone(id string, sub *logSub) {
	sub.mu.Lock()
	sub.pending--
	last := sub.pending == 0
	sub.mu.Unlock()
	if last {
		b.finish(id)
	}
}
