package agent

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/runtime"
)

// Bounds of one PublishLogs message.
const (
	logBatchLines = 256
	logBatchBytes = 64 << 10
)

// publishLogs answers one log subscription: it sends each requested task's
// log lines (the last tail, since a time, as asked) and, with follow,
// keeps sending new lines until the manager ends the stream or ctx ends.
func (a *Agent) publishLogs(ctx context.Context, sub *minkepb.LogSubscription) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.dispatcher().PublishLogs(ctx)
	if err != nil {
		a.log.Warn("publishing logs", "subscription", sub.GetId(), "err", err)
		return
	}
	// An empty first message names the subscription even if there is no log.
	if err := stream.Send(&minkepb.PublishLogsMessage{SubscriptionId: sub.GetId()}); err != nil {
		return
	}
	if sub.GetFollow() {
		// The manager ends the stream when the subscriber leaves.
		go func() {
			var resp minkepb.PublishLogsResponse
			_ = stream.RecvMsg(&resp)
			cancel()
		}()
	}
	a.mu.Lock()
	var tasks []*minkepb.Task
	for _, id := range sub.GetTaskIds() {
		if r, ok := a.runners[id]; ok {
			tasks = append(tasks, r.current())
		}
	}
	a.mu.Unlock()

	opts := runtime.LogOptions{Tail: -1, Follow: sub.GetFollow()}
	if sub.Tail != nil {
		opts.Tail = int(max(sub.GetTail(), 0))
	}
	if sub.GetSince() != nil {
		opts.Since = sub.GetSince().AsTime()
	}

	// One reader per task feeds lines; this goroutine batches and sends.
	lines := make(chan *minkepb.LogMessage, logBatchLines)
	var readers sync.WaitGroup
	read := func(t *minkepb.Task) {
		id := t.GetMeta().GetId()
		err := a.rt.ReadLogs(ctx, id, opts, func(e runtime.LogEntry) error {
			m := &minkepb.LogMessage{ServiceId: t.GetServiceId(), TaskId: id, NodeId: a.NodeID(), Slot: t.GetSlot(),
				Data: []byte(e.Log), Timestamp: timestamppb.New(e.Time), Stream: e.Stream}
			select {
			case lines <- m:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) && ctx.Err() == nil {
			a.log.Warn("reading log", "task_id", id, "err", err)
		}
	}
	if opts.Follow {
		for _, t := range tasks {
			readers.Add(1)
			go func() { defer readers.Done(); read(t) }()
		}
	} else {
		// Task after task, so each task's lines stay together.
		readers.Add(1)
		go func() {
			defer readers.Done()
			for _, t := range tasks {
				read(t)
			}
		}()
	}
	go func() { readers.Wait(); close(lines) }()

	var (
		batch []*minkepb.LogMessage
		size  int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := stream.Send(&minkepb.PublishLogsMessage{SubscriptionId: sub.GetId(), Messages: batch})
		batch, size = nil, 0
		return err
	}
	// A followed log is sent at most this long after a line arrives.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				if flush() == nil && !opts.Follow {
					_, _ = stream.CloseAndRecv()
				}
				return
			}
			batch = append(batch, m)
			size += len(m.Data)
			if len(batch) >= logBatchLines || size >= logBatchBytes {
				if flush() != nil {
					return
				}
			}
		case <-tick.C:
			if flush() != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
