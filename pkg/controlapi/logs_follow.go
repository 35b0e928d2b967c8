package controlapi

import (
	"context"
	"sync"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// viewWatcher is the optional power of a Store to read a snapshot and
// subscribe to every change after it; a followed log uses it to pick up
// tasks that start after the stream began.
type viewWatcher interface {
	ViewAndWatch(fn func(raftstore.ReadTx) error) (*raftstore.Subscription, error)
}

// hasLogs reports whether a task's container may have written a log: it
// was placed and got at least as far as RUNNING (a terminal state counts:
// it may have run first). A task not there yet is followed once it is, so
// that the worker is asked only for logs that exist.
func hasLogs(t *minkepb.Task) bool {
	return t.GetNodeId() != "" && t.GetStatus().GetState() >= minkepb.TaskState_RUNNING
}

// followServiceLogs is ServiceLogs with follow: it streams the logs of the
// service's tasks that have run (with the request's tail and since), and
// adds each task that starts later, from its first line, like
// `docker service logs -f`. It ends when the client leaves or the service
// is removed.
func (s *Server) followServiceLogs(req *minkepb.ServiceLogsRequest, stream minkepb.Control_ServiceLogsServer, w viewWatcher) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		svcID string
		tasks []*minkepb.Task
	)
	sub, err := w.ViewAndWatch(func(tx raftstore.ReadTx) error {
		svc, err := tx.FindService(req.GetService())
		if err != nil {
			return err
		}
		svcID = svc.GetMeta().GetId()
		tasks = tx.TasksByService(svcID)
		return nil
	})
	if err != nil {
		return toStatus(err)
	}
	defer sub.Cancel()

	// Every subscription's batches are forwarded into out, which only this
	// goroutine sends on the stream.
	out := make(chan []*minkepb.LogMessage)
	var forwarders sync.WaitGroup
	defer forwarders.Wait() // after cancel (deferred later, runs first)
	defer cancel()
	followed := map[string]bool{}
	subscribe := func(ts []*minkepb.Task, opts *minkepb.LogSubscription) error {
		if len(ts) == 0 {
			return nil
		}
		for _, t := range ts {
			followed[t.GetMeta().GetId()] = true
		}
		msgs, unavailable := s.logs.Subscribe(ctx, ts, opts)
		forwarders.Add(1)
		go func() {
			defer forwarders.Done()
			for batch := range msgs {
				select {
				case out <- batch:
				case <-ctx.Done():
					return
				}
			}
		}()
		if len(unavailable) > 0 {
			return stream.Send(&minkepb.ServiceLogsResponse{Messages: unavailable})
		}
		return nil
	}
	// newTasks are those of the service that have logs and are not
	// followed yet.
	newTasks := func(ts []*minkepb.Task) []*minkepb.Task {
		var add []*minkepb.Task
		for _, t := range ts {
			if t.GetServiceId() == svcID && !followed[t.GetMeta().GetId()] && hasLogs(t) {
				add = append(add, t)
			}
		}
		return add
	}
	// A task that starts later is read from its first line; the since
	// filter still applies.
	later := &minkepb.LogSubscription{Follow: true, Since: req.GetSince()}
	if err := subscribe(newTasks(tasks), &minkepb.LogSubscription{Follow: true, Tail: req.Tail, Since: req.GetSince()}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return nil // this manager stopped (or lost its store)
		case batch := <-out:
			if err := stream.Send(&minkepb.ServiceLogsResponse{Messages: batch}); err != nil {
				return err
			}
		case <-sub.Ready():
			var changed []*minkepb.Task
			for _, ev := range sub.Drain() {
				switch obj := ev.Object.(type) {
				case *minkepb.Task:
					if ev.Kind != raftstore.EventRemove {
						changed = append(changed, obj)
					}
				case *minkepb.Service:
					if ev.Kind == raftstore.EventRemove && obj.GetMeta().GetId() == svcID {
						return nil
					}
				}
				if ev.Kind == raftstore.EventReset {
					gone := false
					_ = s.store.View(func(tx raftstore.ReadTx) error {
						changed = append(changed, tx.TasksByService(svcID)...)
						_, err := tx.FindService(svcID)
						gone = err != nil
						return nil
					})
					if gone {
						return nil
					}
				}
			}
			if err := subscribe(newTasks(changed), later); err != nil {
				return err
			}
		}
	}
}
