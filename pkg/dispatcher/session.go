package dispatcher

import (
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Session streams the node's assignment set: at once, then after every
// committed change that touches the node's tasks. Log subscriptions for the
// node ride the same stream.
func (d *Dispatcher) Session(req *minkepb.SessionRequest, stream minkepb.Dispatcher_SessionServer) error {
	ctx := stream.Context()
	nodeID, err := d.authenticateNode(ctx)
	if err != nil {
		return err
	}
	if req.GetNodeId() != "" && req.GetNodeId() != nodeID {
		return status.Errorf(codes.PermissionDenied, "node %s cannot open a session for node %s", nodeID, req.GetNodeId())
	}
	var msg *minkepb.SessionMessage
	sub, err := d.cfg.Store.ViewAndWatch(func(tx raftstore.ReadTx) error {
		if tx.Node(nodeID) == nil {
			return nodeNotFound(nodeID)
		}
		msg = sessionMessage(tx, nodeID)
		return nil
	})
	if err != nil {
		return err
	}
	defer sub.Cancel()
	logs := d.Logs.attach(nodeID)
	defer d.Logs.detach(nodeID, logs)
	d.log.Info("session started", "node_id", nodeID, "tasks", len(msg.GetTasks()))
	defer d.log.Info("session ended", "node_id", nodeID)

	if err := stream.Send(msg); err != nil {
		return err
	}
	sent := versions(msg)
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
		case <-sub.Done():
			return status.Error(codes.Unavailable, "manager is shutting down")
		case ls := <-logs:
			if err := stream.Send(&minkepb.SessionMessage{LogSubscription: ls}); err != nil {
				return err
			}
		case <-sub.Ready():
			if !touchesNode(sub.Drain(), nodeID) {
				continue
			}
			gone := false
			var trustErr error
			_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error {
				gone = tx.Node(nodeID) == nil
				if !gone {
					msg = sessionMessage(tx, nodeID)
					trustErr = stillTrusted(ctx, tx.Cluster())
				}
				return nil
			})
			if gone {
				return nodeNotFound(nodeID) // removed from the cluster
			}
			if trustErr != nil {
				d.log.Info("ending a session whose certificate the cluster no longer trusts", "node_id", nodeID, "err", trustErr)
				return status.Error(codes.Unavailable, trustErr.Error())
			}
			v := versions(msg)
			if slices.Equal(v, sent) {
				continue
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
			sent = v
		}
	}
}

// sessionMessage is what a node's session carries: its assignments, its
// own record and, once the operator promoted it, the manager token.
func sessionMessage(tx raftstore.ReadTx, nodeID string) *minkepb.SessionMessage {
	n := proto.Clone(tx.Node(nodeID)).(*minkepb.Node)
	n.SecretHash = nil
	c := tx.Cluster()
	msg := &minkepb.SessionMessage{Tasks: tx.TasksByNode(nodeID), Node: n,
		CaCerts: ca.TrustBundle(c), CaFingerprint: ca.PEMFingerprint(c.GetRootCa().GetCert())}
	if n.GetSpec().GetDesiredRole() == minkepb.NodeRole_MANAGER && n.GetRole() != minkepb.NodeRole_MANAGER {
		msg.ManagerToken = tx.Cluster().GetJoinTokens().GetManager()
	}
	return msg
}

func touchesNode(evs []raftstore.Event, nodeID string) bool {
	for _, ev := range evs {
		if t, ok := ev.Object.(*minkepb.Task); ok && t.GetNodeId() == nodeID {
			return true
		}
		if n, ok := ev.Object.(*minkepb.Node); ok && n.GetMeta().GetId() == nodeID {
			return true
		}
		if _, ok := ev.Object.(*minkepb.Cluster); ok {
			return true // the CA may have changed
		}
		if ev.Kind == raftstore.EventReset {
			return true
		}
	}
	return false
}

// versions identifies a session message: the node's version, then task IDs
// with their versions, in ID order.
func versions(msg *minkepb.SessionMessage) []string {
	out := []string{"node@" + strconv.FormatUint(msg.GetNode().GetMeta().GetVersion(), 10),
		"ca@" + msg.GetCaFingerprint() + "/" + strconv.Itoa(len(msg.GetCaCerts()))}
	for _, t := range msg.GetTasks() {
		out = append(out, t.GetMeta().GetId()+"@"+strconv.FormatUint(t.GetMeta().GetVersion(), 10))
	}
	return out
}
