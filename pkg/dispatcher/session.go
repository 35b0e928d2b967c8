package dispatcher

import (
	"slices"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
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
	var tasks []*minkepb.Task
	sub, err := d.cfg.Store.ViewAndWatch(func(tx raftstore.ReadTx) error {
		if tx.Node(nodeID) == nil {
			return nodeNotFound(nodeID)
		}
		tasks = tx.TasksByNode(nodeID)
		return nil
	})
	if err != nil {
		return err
	}
	defer sub.Cancel()
	logs := d.Logs.attach(nodeID)
	defer d.Logs.detach(nodeID, logs)
	d.log.Info("session started", "node_id", nodeID, "tasks", len(tasks))
	defer d.log.Info("session ended", "node_id", nodeID)

	if err := stream.Send(&minkepb.SessionMessage{Tasks: tasks}); err != nil {
		return err
	}
	sent := versions(tasks)
	for {
		select {
		case <-ctx.Done():
			return nil
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
			_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error { tasks = tx.TasksByNode(nodeID); return nil })
			v := versions(tasks)
			if slices.Equal(v, sent) {
				continue
			}
			if err := stream.Send(&minkepb.SessionMessage{Tasks: tasks}); err != nil {
				return err
			}
			sent = v
		}
	}
}

func touchesNode(evs []raftstore.Event, nodeID string) bool {
	for _, ev := range evs {
		if t, ok := ev.Object.(*minkepb.Task); ok && t.GetNodeId() == nodeID {
			return true
		}
		if ev.Kind == raftstore.EventReset {
			return true
		}
	}
	return false
}

// versions identifies an assignment set: task IDs with their versions, in ID
// order.
func versions(tasks []*minkepb.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.GetMeta().GetId() + "@" + strconv.FormatUint(t.GetMeta().GetVersion(), 10)
	}
	return out
}
