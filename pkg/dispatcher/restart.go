package dispatcher

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// DefaultRestartGracePeriod is how long the leader holds a node that
// announced a planned restart (see AnnounceRestart): long enough for a
// worker to stop, be upgraded and start again (it re-adopts its running
// containers), short enough that a node that does not come back has its
// tasks replaced soon. A crash announces nothing and takes the fast path
// (DOWN within about a second).
const DefaultRestartGracePeriod = 30 * time.Second

// AnnounceRestart records that the calling node is stopping for a planned
// restart: its NodeStatus.restart_deadline is set to now plus the restart
// grace period, during which leaving gossip or its session does not mark
// it DOWN (see HeldForRestart). A grace period below 0 turns this off.
func (d *Dispatcher) AnnounceRestart(ctx context.Context, req *minkepb.AnnounceRestartRequest) (*minkepb.AnnounceRestartResponse, error) {
	nodeID, err := d.authenticateNode(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetNodeId() != "" && req.GetNodeId() != nodeID {
		return nil, status.Errorf(codes.PermissionDenied, "node %s cannot announce a restart of node %s", nodeID, req.GetNodeId())
	}
	grace := d.cfg.RestartGracePeriod
	if grace == 0 {
		grace = DefaultRestartGracePeriod
	}
	if grace < 0 {
		return &minkepb.AnnounceRestartResponse{}, nil
	}
	if d.cfg.IsLeader != nil && !d.cfg.IsLeader() {
		return nil, status.Error(codes.Unavailable, "this manager is not the leader: announce the restart to the leader")
	}
	deadline := d.now().Add(grace)
	err = d.cfg.Store.Update(ctx, func(tx *raftstore.WriteTx) error {
		n := tx.Node(nodeID)
		if n == nil {
			return nodeNotFound(nodeID)
		}
		n = proto.Clone(n).(*minkepb.Node)
		if n.Status == nil {
			n.Status = &minkepb.NodeStatus{}
		}
		n.Status.RestartDeadline = timestamppb.New(deadline)
		n.Status.Message = "restarting (planned); held until " + deadline.UTC().Format(time.RFC3339)
		return tx.Update(n)
	})
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "recording the restart of node %s: %v", nodeID, err)
	}
	d.log.Info("node announced a planned restart; holding its tasks", "node_id", nodeID, "grace", grace)
	return &minkepb.AnnounceRestartResponse{Grace: durationpb.New(grace)}, nil
}

// HeldForRestart reports whether n announced a planned restart whose
// deadline is after now: such a node is not marked DOWN for being away.
func HeldForRestart(n *minkepb.Node, now time.Time) bool {
	d := n.GetStatus().GetRestartDeadline()
	return d != nil && now.Before(d.AsTime())
}

// NodeStateChange reports whether recording state for n changes anything:
// a new state, or READY for a node back from a planned restart (which
// clears its deadline). DOWN is refused while n is held for its restart.
func NodeStateChange(n *minkepb.Node, state minkepb.NodeStatus_State, now time.Time) bool {
	if state == minkepb.NodeStatus_DOWN && HeldForRestart(n, now) {
		return false
	}
	if n.GetStatus().GetState() != state {
		return true
	}
	return state == minkepb.NodeStatus_READY && n.GetStatus().GetRestartDeadline() != nil
}
