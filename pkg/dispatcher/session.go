package dispatcher

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Session streams the node's assignment set: at once, then after every
// committed change that touches the node's tasks. The network state rides
// along in the first message and whenever it changed; the other messages
// leave it out, and the worker keeps the last one it got. Log
// subscriptions for the node ride the same stream.
//
// A worker that merges deltas (SessionRequest.deltas) gets the complete
// set and state first, then only what changed (see sessionState).
func (d *Dispatcher) Session(req *minkepb.SessionRequest, stream minkepb.Dispatcher_SessionServer) error {
	ctx := stream.Context()
	nodeID, err := d.authenticateNode(ctx)
	if err != nil {
		return err
	}
	if req.GetNodeId() != "" && req.GetNodeId() != nodeID {
		return status.Errorf(codes.PermissionDenied, "node %s cannot open a session for node %s", nodeID, req.GetNodeId())
	}
	// Watch before reading, so no change committed after the read is
	// missed (see fanout.watch).
	w, err := d.fan.watch(ctx, nodeID)
	if err != nil {
		return status.Error(codes.Unavailable, "manager is not accepting sessions (shutting down): retry")
	}
	defer d.fan.unwatch(w)
	s := &sessionState{nodeID: nodeID, deltas: req.GetDeltas()}
	var msg *minkepb.SessionMessage
	epoch := d.fan.netEpoch.Load() // before the read: see netCache.get
	err = d.cfg.Store.View(func(tx raftstore.ReadTx) error {
		if tx.Node(nodeID) == nil {
			return nodeNotFound(nodeID)
		}
		msg = d.sessionMessage(tx, s, epoch)
		return nil
	})
	if err != nil {
		return err
	}
	logs := d.Logs.attach(nodeID)
	defer d.Logs.detach(nodeID, logs)
	d.live.opened(nodeID)
	defer func() { d.live.closed(nodeID, time.Now()) }()
	d.metrics.sessions.Inc()
	defer d.metrics.sessions.Dec()
	d.log.Debug("session started", "node_id", nodeID, "tasks", len(msg.GetTasks()), "deltas", s.deltas)
	defer d.log.Debug("session ended", "node_id", nodeID)

	if err := stream.Send(msg); err != nil {
		return err
	}
	d.metrics.messages.Inc()
	var checked *minkepb.Cluster // the cluster record whose roots last passed stillTrusted
	leaderCheck := time.NewTicker(time.Second)
	defer leaderCheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-leaderCheck.C:
			if d.cfg.IsLeader != nil && !d.cfg.IsLeader() {
				return status.Error(codes.Unavailable, "this manager is no longer the leader: reconnect to the new one")
			}
		case <-w.done:
			return status.Error(codes.Unavailable, "manager is shutting down")
		case ls := <-logs:
			if err := stream.Send(&minkepb.SessionMessage{LogSubscription: ls}); err != nil {
				return err
			}
		case <-w.ready:
			// At most a few sessions build a message at once (see
			// builders); the wakes of those waiting merge meanwhile.
			select {
			case d.builders <- struct{}{}:
			case <-ctx.Done():
				return nil
			case <-w.done:
				return status.Error(codes.Unavailable, "manager is shutting down")
			}
			gone := false
			var trustErr error
			wide, began := w.wide.Swap(false), time.Now()
			if wide {
				d.metrics.networkWakes.Inc()
			} else {
				d.metrics.nodeWakes.Inc()
			}
			epoch := d.fan.netEpoch.Load()
			msg = nil
			_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error {
				gone = tx.Node(nodeID) == nil
				if gone {
					return nil
				}
				// Stored objects are immutable: the same Cluster pointer
				// is the same trust bundle, already checked (a signature
				// check per wake was a sixth of the manager's CPU at
				// scale).
				if c := tx.Cluster(); c != checked {
					if trustErr = stillTrusted(ctx, c); trustErr != nil {
						return nil
					}
					checked = c
				}
				msg = d.sessionMessage(tx, s, epoch)
				return nil
			})
			<-d.builders
			if gone {
				return nodeNotFound(nodeID) // removed from the cluster
			}
			if trustErr != nil {
				d.log.Info("ending a session whose certificate the cluster no longer trusts", "node_id", nodeID, "err", trustErr)
				return status.Error(codes.Unavailable, trustErr.Error())
			}
			if msg != nil {
				if err := stream.Send(msg); err != nil {
					return err
				}
				d.metrics.messages.Inc()
			}
			if wide {
				d.net.fanning.Add(int64(time.Since(began)))
			}
		}
	}
}
