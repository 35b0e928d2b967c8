package agent

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// reporter sends task status to the dispatcher. It keeps only the newest
// status per task (states move forward, so an older one adds nothing), sends
// everything pending in one call, and retries until it is acknowledged.
type reporter struct {
	// client is the manager to report to, and its address.
	client func() (minkepb.DispatcherClient, string)
	// failover is told about refused reports (their trailer may name the
	// leader).
	failover func(from string, trailer metadata.MD)
	log      *slog.Logger
	nodeID   string

	mu      sync.Mutex
	pending map[string]*minkepb.TaskStatus
	kick    chan struct{}
}

func newReporter(c func() (minkepb.DispatcherClient, string), log *slog.Logger) *reporter {
	return &reporter{client: c, log: log, pending: map[string]*minkepb.TaskStatus{}, kick: make(chan struct{}, 1)}
}

// report queues a state change for taskID.
func (r *reporter) report(taskID string, state minkepb.TaskState, msg, errMsg string, ctr *minkepb.ContainerStatus) {
	st := &minkepb.TaskStatus{Timestamp: timestamppb.Now(), State: state, Message: msg, Err: errMsg, Container: ctr}
	r.mu.Lock()
	if old, ok := r.pending[taskID]; !ok || old.GetState() <= state {
		r.pending[taskID] = st
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// reportGather is how long the reporter lets reports gather after the
// first before it sends them: a task's first states follow each other
// within microseconds (ACCEPTED, PREPARING, and STARTING and RUNNING when
// the image is present), and the tasks of one assignment set start
// together, so one call carries them all instead of a call for each
// state; the managers learn of them at most this much later.
const reportGather = 20 * time.Millisecond

func (r *reporter) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	gather := time.NewTimer(reportGather)
	defer gather.Stop()
	for {
		select {
		case <-ctx.Done():
			r.flush(context.Background(), time.Second) // best effort on the way out
			return
		case <-r.kick:
		}
		gather.Reset(reportGather)
		select {
		case <-ctx.Done():
			r.flush(context.Background(), time.Second)
			return
		case <-gather.C:
		}
		for !r.flush(ctx, 5*time.Second) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
		backoff = 100 * time.Millisecond
	}
}

// flush sends what is pending; false means it must be retried.
func (r *reporter) flush(ctx context.Context, timeout time.Duration) bool {
	r.mu.Lock()
	batch := r.pending
	r.pending = map[string]*minkepb.TaskStatus{}
	r.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	req := &minkepb.UpdateTaskStatusRequest{NodeId: r.nodeID}
	for id, st := range batch {
		req.Updates = append(req.Updates, &minkepb.TaskStatusUpdate{TaskId: id, Status: st})
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var trailer metadata.MD
	disp, at := r.client()
	if _, err := disp.UpdateTaskStatus(cctx, req, grpc.Trailer(&trailer)); err != nil {
		// Only a refusal moves the agent: a report that timed out on a
		// busy manager is retried there. The session, which shares the
		// connection, notices a manager that is gone; moving on a
		// timeout took working sessions off the leader.
		if status.Code(err) == codes.Unavailable && r.failover != nil {
			r.failover(at, trailer)
		}
		r.log.Warn("reporting task status failed; will retry", "updates", len(batch), "err", err)
		r.mu.Lock()
		for id, st := range batch {
			if cur, ok := r.pending[id]; !ok || cur.GetState() < st.GetState() {
				r.pending[id] = st
			}
		}
		r.mu.Unlock()
		return false
	}
	return true
}
