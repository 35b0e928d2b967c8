package dispatcher

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Session streams the node's assignment set: at once, then after every
// committed change that touches the node's tasks. The network state rides
// along in the first message and whenever it changed; the other messages
// leave it out, and the worker keeps the last one it got. Log subscriptions for the
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
	// Watch before reading, so no change committed after the read is
	// missed (see fanout.watch).
	w, err := d.fan.watch(ctx, nodeID)
	if err != nil {
		return status.Error(codes.Unavailable, "manager is not accepting sessions (shutting down): retry")
	}
	defer d.fan.unwatch(w)
	var (
		msg    *minkepb.SessionMessage
		netVer string
	)
	epoch := d.fan.netEpoch.Load() // before the read: see netCache.get
	err = d.cfg.Store.View(func(tx raftstore.ReadTx) error {
		if tx.Node(nodeID) == nil {
			return nodeNotFound(nodeID)
		}
		msg, netVer = d.sessionMessage(tx, nodeID, epoch)
		return nil
	})
	if err != nil {
		return err
	}
	logs := d.Logs.attach(nodeID)
	defer d.Logs.detach(nodeID, logs)
	d.live.opened(nodeID)
	defer func() { d.live.closed(nodeID, time.Now()) }()
	d.log.Debug("session started", "node_id", nodeID, "tasks", len(msg.GetTasks()))
	defer d.log.Debug("session ended", "node_id", nodeID)

	if err := stream.Send(msg); err != nil {
		return err
	}
	sent := versions(msg, netVer)
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
			gone := false
			var trustErr error
			epoch := d.fan.netEpoch.Load()
			_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error {
				gone = tx.Node(nodeID) == nil
				if !gone {
					msg, netVer = d.sessionMessage(tx, nodeID, epoch)
					// Stored objects are immutable: the same Cluster
					// pointer is the same trust bundle, already checked
					// (a signature check per wake was a sixth of the
					// manager's CPU at scale).
					if c := tx.Cluster(); c != checked {
						trustErr = stillTrusted(ctx, c)
						checked = c
					}
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
			v := versions(msg, netVer)
			if slices.Equal(v, sent) {
				continue
			}
			if v[len(v)-1] == sent[len(sent)-1] {
				// The network state is unchanged: a message without one
				// leaves the worker's as it is (agentNet.apply). Every
				// message carrying every service's record made each
				// assignment change cost a node the whole cluster's
				// records, most of the bytes sent at scale.
				msg.Network = nil
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
			sent = v
		}
	}
}

// sessionMessage is what a node's session carries: its assignments, its
// own record and, once the operator promoted it, the manager token. The
// network state comes from the cluster-wide part cached for epoch (see
// netCache); the second result is its fingerprint.
func (d *Dispatcher) sessionMessage(tx raftstore.ReadTx, nodeID string, epoch uint64) (*minkepb.SessionMessage, string) {
	n := proto.Clone(tx.Node(nodeID)).(*minkepb.Node)
	n.SecretHash = nil
	c := tx.Cluster()
	shared, sharedVer := d.net.get(tx, epoch)
	netSt, netVer := forNode(tx, nodeID, shared, sharedVer)
	msg := &minkepb.SessionMessage{Tasks: assignments(tx.TasksByNode(nodeID)), Node: n, Network: netSt,
		GossipKeyring: gossipKeyring(c), CaCerts: ca.TrustBundle(c), CaFingerprint: ca.PEMFingerprint(c.GetRootCa().GetCert()),
		RegistryAddrs: registryAddrs(tx)}
	if n.GetSpec().GetDesiredRole() == minkepb.NodeRole_MANAGER && n.GetRole() != minkepb.NodeRole_MANAGER {
		msg.ManagerToken = tx.Cluster().GetJoinTokens().GetManager()
	}
	return msg, netVer
}

// versions identifies what a session message asks of the node: the node's
// record without its status and metadata (role, spec), then each task's ID
// with its desired state, in ID order. A change of observed status alone —
// the node's own task reports echoed back through the store, or the node
// being marked READY — asks nothing new, so it is not sent again; this
// spares a worker its own status updates, which are most of the commits
// touching it.
//
// netVersion fingerprints msg's network state (see forNode).
func versions(msg *minkepb.SessionMessage, netVersion string) []string {
	n := proto.Clone(msg.GetNode()).(*minkepb.Node)
	n.Status, n.Meta = nil, nil
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(n)
	out := []string{string(b), msg.GetManagerToken(), keyringVersion(msg.GetGossipKeyring()),
		"ca@" + msg.GetCaFingerprint() + "/" + strconv.Itoa(len(msg.GetCaCerts())), "registries@" + strings.Join(msg.GetRegistryAddrs(), ",")}
	for _, t := range msg.GetTasks() {
		out = append(out, t.GetMeta().GetId()+"@"+t.GetDesiredState().String())
	}
	return append(out, netVersion)
}
