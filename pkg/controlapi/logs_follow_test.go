package controlapi

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

// recordingLogs is a LogSource that records each subscription and answers
// each with one line per task, then holds the channel open (a follow).
type recordingLogs struct {
	mu    sync.Mutex
	calls []logCall
	added chan struct{}
}

type logCall struct {
	tasks []string
	opts  *minkepb.LogSubscription
}

func (l *recordingLogs) Subscribe(ctx context.Context, tasks []*minkepb.Task, opts *minkepb.LogSubscription) (<-chan []*minkepb.LogMessage, []*minkepb.LogMessage) {
	c := logCall{opts: opts}
	out := make(chan []*minkepb.LogMessage, len(tasks))
	for _, t := range tasks {
		c.tasks = append(c.tasks, t.GetMeta().GetId())
		out <- []*minkepb.LogMessage{{TaskId: t.GetMeta().GetId(), Data: []byte("line of " + t.GetMeta().GetId() + "\n")}}
	}
	context.AfterFunc(ctx, func() { close(out) })
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
	l.added <- struct{}{}
	return out, nil
}

// logStream is the server side of a ServiceLogs call.
type logStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs chan *minkepb.LogMessage
}

func (s *logStream) Context() context.Context { return s.ctx }
func (s *logStream) Send(r *minkepb.ServiceLogsResponse) error {
	for _, m := range r.GetMessages() {
		s.msgs <- m
	}
	return nil
}

// TestFollowLogsAddsStartedTasks follows a service's logs: tasks running
// at the start are followed with the request's tail; a task that is placed
// later is followed only once it runs, from its first line (no tail); a
// task of another service is not; removing the service ends the stream.
func TestFollowLogsAddsStartedTasks(t *testing.T) {
	n := storetest.New(t)
	logs := &recordingLogs{added: make(chan struct{}, 8)}
	s := New(Config{Store: n, Logs: logs, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.CreateService(ctx, &minkepb.CreateServiceRequest{Spec: spec("web", "hello", 1)})
	if err != nil {
		t.Fatal(err)
	}
	svc := resp.GetService()
	other, err := s.CreateService(ctx, &minkepb.CreateServiceRequest{Spec: spec("other", "hello", 1)})
	if err != nil {
		t.Fatal(err)
	}
	task := func(id, service string, state minkepb.TaskState) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceId: service, NodeId: "n1", Slot: 1,
			DesiredState: minkepb.TaskState_RUNNING, Status: &minkepb.TaskStatus{State: state}}
	}
	put := func(tk *minkepb.Task, create bool) {
		storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
			if create {
				return tx.Create(tk)
			}
			cur := tx.Task(tk.GetMeta().GetId())
			tk.Meta = cur.GetMeta()
			return tx.Update(tk)
		})
	}
	put(task("t-running", svc.GetMeta().GetId(), minkepb.TaskState_RUNNING), true)
	put(task("t-preparing", svc.GetMeta().GetId(), minkepb.TaskState_PREPARING), true)

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	stream := &logStream{ctx: sctx, msgs: make(chan *minkepb.LogMessage, 16)}
	tail := int64(5)
	done := make(chan error, 1)
	go func() {
		done <- s.ServiceLogs(&minkepb.ServiceLogsRequest{Service: "web", Follow: true, Tail: &tail}, stream)
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-logs.added:
		case <-ctx.Done():
			t.Fatalf("no subscription for %s", what)
		}
	}
	line := func(want string) {
		t.Helper()
		select {
		case m := <-stream.msgs:
			if m.GetTaskId() != want {
				t.Fatalf("line from task %s, want %s", m.GetTaskId(), want)
			}
		case <-ctx.Done():
			t.Fatalf("no line from %s", want)
		}
	}
	wait("the running task")
	line("t-running")

	// Another service's task, and the preparing one going to STARTING: no
	// subscription. Then it runs, and a new task is placed and runs.
	put(task("t-other", other.GetService().GetMeta().GetId(), minkepb.TaskState_RUNNING), true)
	put(task("t-preparing", svc.GetMeta().GetId(), minkepb.TaskState_STARTING), false)
	put(task("t-preparing", svc.GetMeta().GetId(), minkepb.TaskState_RUNNING), false)
	wait("the task that started")
	line("t-preparing")
	put(task("t-new", svc.GetMeta().GetId(), minkepb.TaskState_RUNNING), true)
	wait("the new task")
	line("t-new")
	// An update of a followed task subscribes nothing more.
	put(task("t-new", svc.GetMeta().GetId(), minkepb.TaskState_FAILED), false)

	if _, err := s.RemoveService(ctx, &minkepb.RemoveServiceRequest{Service: "web"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServiceLogs: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the stream did not end when the service was removed")
	}

	logs.mu.Lock()
	defer logs.mu.Unlock()
	if len(logs.calls) != 3 {
		t.Fatalf("%d subscriptions %+v, want 3", len(logs.calls), logs.calls)
	}
	for i, want := range []struct {
		task string
		tail *int64
	}{{"t-running", &tail}, {"t-preparing", nil}, {"t-new", nil}} {
		c := logs.calls[i]
		if len(c.tasks) != 1 || c.tasks[0] != want.task || !c.opts.GetFollow() {
			t.Errorf("subscription %d: tasks %v follow %v, want [%s] with follow", i, c.tasks, c.opts.GetFollow(), want.task)
		}
		if (want.tail == nil) != (c.opts.Tail == nil) || (want.tail != nil && c.opts.GetTail() != *want.tail) {
			t.Errorf("subscription %d (%s): tail %v, want %v", i, want.task, c.opts.Tail, want.tail)
		}
	}
}
