package agent

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// announceTimeout bounds telling the leader about a planned restart: a
// worker being stopped must not hang on a manager that does not answer.
const announceTimeout = 5 * time.Second

// announceRestart tells the leader that this node is stopping for a
// planned restart and will be back, before the node leaves gossip: the
// leader then holds it READY, with its tasks, for its grace period rather
// than marking it DOWN and replacing the tasks at once. Its containers
// keep running under their shims meanwhile, and the next worker process
// re-adopts them. A failure is logged: the node is then handled as if it
// had crashed.
func (a *Agent) announceRestart(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, announceTimeout)
	defer cancel()
	a.mu.Lock()
	tries := len(a.managers) + 1 // each known manager, and the leader one names
	a.mu.Unlock()
	backoff := 50 * time.Millisecond
	for try := 1; ; try++ {
		var trailer metadata.MD
		disp, at := a.dispatcherAt()
		resp, err := disp.AnnounceRestart(ctx, &minkepb.AnnounceRestartRequest{NodeId: a.NodeID()}, grpc.Trailer(&trailer))
		if err == nil {
			if g := resp.GetGrace().AsDuration(); g > 0 {
				a.log.Info("announced a planned restart: the managers hold this node's tasks", "grace", g)
			} else {
				a.log.Info("announced a planned restart; the managers hold no restarting node (--worker-restart-grace): its tasks will be replaced")
			}
			return
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil || try >= tries {
			a.log.Warn("announcing a planned restart failed: this node's tasks will be replaced as after a crash", "err", status.Convert(err).Message())
			return
		}
		a.failover(at, trailer) // not the leader, or gone: try the next manager
		select {
		case <-ctx.Done():
			a.log.Warn("announcing a planned restart timed out: this node's tasks will be replaced as after a crash")
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}
