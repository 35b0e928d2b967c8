package dispatcher

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// LogBroker routes log subscriptions from Control.ServiceLogs to the workers
// that run the tasks (down their sessions) and the workers' PublishLogs
// streams back to the subscriber.
type LogBroker struct {
	log      *slog.Logger
	mu       sync.Mutex
	sessions map[string]chan *minkepb.LogSubscription
	subs     map[string]*logSub
}

type logSub struct {
	ctx     context.Context
	out     chan []*minkepb.LogMessage
	mu      sync.Mutex
	pending int // nodes that have not finished publishing
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

// Subscribe asks the workers holding tasks for their logs. The returned
// channel is closed when every worker has sent what it has (without follow)
// or when ctx ends. Nodes without a session are reported in missing.
func (b *LogBroker) Subscribe(ctx context.Context, tasks []*minkepb.Task, follow bool) (msgs <-chan []*minkepb.LogMessage, missing []string) {
	byNode := map[string][]string{}
	var order []string
	for _, t := range tasks {
		if t.GetNodeId() == "" {
			continue
		}
		if _, ok := byNode[t.GetNodeId()]; !ok {
			order = append(order, t.GetNodeId())
		}
		byNode[t.GetNodeId()] = append(byNode[t.GetNodeId()], t.GetMeta().GetId())
	}
	id := raftstore.NewID()
	sub := &logSub{ctx: ctx, out: make(chan []*minkepb.LogMessage, 64)}
	b.mu.Lock()
	for _, node := range order {
		ch, ok := b.sessions[node]
		if !ok {
			missing = append(missing, node)
			continue
		}
		select {
		case ch <- &minkepb.LogSubscription{Id: id, TaskIds: byNode[node], Follow: follow}:
			sub.pending++
		default:
			missing = append(missing, node)
		}
	}
	b.subs[id] = sub
	b.mu.Unlock()
	if sub.pending == 0 {
		b.finish(id)
	} else {
		context.AfterFunc(ctx, func() { b.finish(id) })
	}
	return sub.out, missing
}

// finish closes a subscription once (ctx end, or all nodes done).
func (b *LogBroker) finish(id string) {
	b.mu.Lock()
	sub, ok := b.subs[id]
	delete(b.subs, id)
	b.mu.Unlock()
	if ok {
		sub.mu.Lock()
		close(sub.out)
		sub.pending = -1
		sub.mu.Unlock()
	}
}

func (b *LogBroker) lookup(id string) *logSub {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subs[id]
}

// PublishLogs receives one worker's answer to one subscription. It returns
// (ending the worker's stream) when the subscriber goes away.
func (d *Dispatcher) PublishLogs(stream minkepb.Dispatcher_PublishLogsServer) error {
	if _, err := d.authenticate(stream.Context()); err != nil {
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
	msg := first
	for {
		if len(msg.GetMessages()) > 0 && !d.Logs.deliver(sub, msg.GetMessages()) {
			return stream.SendAndClose(&minkepb.PublishLogsResponse{})
		}
		msg, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			d.Logs.nodeDone(id, sub)
			return stream.SendAndClose(&minkepb.PublishLogsResponse{})
		}
		if err != nil {
			d.Logs.nodeDone(id, sub)
			return err
		}
	}
}

// deliver hands messages to the subscriber; false means it is gone.
func (b *LogBroker) deliver(sub *logSub, msgs []*minkepb.LogMessage) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.pending < 0 {
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
