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
	// The session is registered before the first read, so no change
	// committed after the read is missed (see fanout.watch); until the
	// first message is sent it counts as building, so wakes meanwhile only
	// mark it pending.
	ss := &session{d: d, nodeID: nodeID, ctx: ctx, st: sessionState{nodeID: nodeID, deltas: req.GetDeltas()},
		building: true, out: make(chan *outgoing, 1), failed: make(chan error, 1)}
	w, err := d.fan.watch(ctx, nodeID, ss.wake)
	if err != nil {
		return status.Error(codes.Unavailable, "manager is not accepting sessions (shutting down): retry")
	}
	defer d.fan.unwatch(w)
	defer ss.close()
	notLeader := d.leaderLost()
	var msg *outgoing
	epoch := d.fan.netEpoch.Load() // before the read: see netCache.get
	err = d.cfg.Store.View(func(tx raftstore.ReadTx) error {
		if tx.Node(nodeID) == nil {
			return nodeNotFound(nodeID)
		}
		msg = d.nextMessage(tx, &ss.st, epoch)
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
	d.open.Add(1)
	defer d.open.Add(-1)
	d.log.Debug("session started", "node_id", nodeID, "tasks", len(msg.GetMsg().GetTasks()), "deltas", ss.st.deltas)
	defer d.log.Debug("session ended", "node_id", nodeID)

	if err := send(stream, msg); err != nil {
		return err
	}
	d.metrics.messages.Inc()
	ss.built() // later messages are the builders' (see sessionQueue)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-notLeader:
			return status.Error(codes.Unavailable, "this manager is no longer the leader: reconnect to the new one")
		case <-w.done:
			return status.Error(codes.Unavailable, "manager is shutting down")
		case err := <-ss.failed:
			return err
		case msg := <-ss.out:
			if err := send(stream, msg); err != nil {
				return err
			}
			d.metrics.messages.Inc()
			ss.built()
		case ls := <-logs:
			if err := stream.Send(&minkepb.SessionMessage{LogSubscription: ls}); err != nil {
				return err
			}
		}
	}
}

// send sends a session message through the Dispatcher's codec, which
// encodes its shared records once for all sessions (see ServerOptions).
func send(stream minkepb.Dispatcher_SessionServer, o *outgoing) error {
	return stream.SendMsg(o)
}

// Session pacing: a session builds its next message no sooner than
// sessionPace after its last. A commit that places 2,000 tasks wakes about
// 2,000 sessions, and at 5,000 nodes the commits come several times a
// second while services are created: unpaced, each node got about one
// message per task placed on it, and every message costs the manager a
// store read, an encoding and a TLS write, and the worker a status report
// after it. Paced, the wakes within the pace merge into one message.
//
// The pace grows with the number of open sessions, as the work of a round
// of wakes does: perSessionPace per session, so at most about
// 1/perSessionPace messages a second in all, never more than maxPace. A
// small cluster is not slowed: with 10 sessions the pace is a millisecond.
// A session that was quiet for longer than the pace sends at once.
const (
	perSessionPace = 400 * time.Microsecond
	maxPace        = 2 * time.Second
)

// sessionPace is the least time between two messages of one session.
func (d *Dispatcher) sessionPace() time.Duration {
	if p := d.paceOverride.Load(); p != 0 {
		return time.Duration(p)
	}
	return min(time.Duration(d.open.Load())*perSessionPace, maxPace)
}
