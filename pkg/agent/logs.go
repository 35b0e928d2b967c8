package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// logChunk bounds one log message's payload.
const logChunk = 32 << 10

// publishLogs answers one log subscription: it sends each requested task's
// log and, with follow, keeps sending new output until the manager ends the
// stream or ctx ends.
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
	tasks := map[string]*minkepb.Task{}
	for _, id := range sub.GetTaskIds() {
		if r, ok := a.runners[id]; ok {
			tasks[id] = r.current()
		}
	}
	a.mu.Unlock()

	type tail struct {
		t *minkepb.Task
		f io.ReadCloser
	}
	var tails []tail
	defer func() {
		for _, t := range tails {
			t.f.Close()
		}
	}()
	for _, id := range sub.GetTaskIds() {
		t, ok := tasks[id]
		if !ok {
			continue
		}
		f, err := a.rt.OpenLog(id)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				a.log.Warn("opening log", "task_id", id, "err", err)
			}
			continue
		}
		tails = append(tails, tail{t, f})
	}
	buf := make([]byte, logChunk)
	send := func() (sent bool, err error) {
		for _, tl := range tails {
			for {
				n, rerr := tl.f.Read(buf)
				if n > 0 {
					sent = true
					msg := &minkepb.LogMessage{ServiceId: tl.t.GetServiceId(), TaskId: tl.t.GetMeta().GetId(),
						NodeId: a.NodeID(), Slot: tl.t.GetSlot(), Data: append([]byte(nil), buf[:n]...)}
					if err := stream.Send(&minkepb.PublishLogsMessage{SubscriptionId: sub.GetId(), Messages: []*minkepb.LogMessage{msg}}); err != nil {
						return sent, err
					}
				}
				if rerr != nil {
					break
				}
			}
		}
		return sent, nil
	}
	if _, err := send(); err != nil || !sub.GetFollow() {
		_, _ = stream.CloseAndRecv()
		return
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := send(); err != nil {
				return
			}
		}
	}
}
