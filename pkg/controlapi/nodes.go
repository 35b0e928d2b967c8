package controlapi

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
)

// ListNodes lists the cluster's nodes; managers carry their observed
// leadership and reachability.
func (s *Server) ListNodes(ctx context.Context, _ *minkepb.ListNodesRequest) (*minkepb.ListNodesResponse, error) {
	resp := &minkepb.ListNodesResponse{}
	leader := ""
	if s.cluster != nil {
		leader, _ = s.cluster.LeaderID()
	}
	_ = s.store.View(func(tx raftstore.ReadTx) error {
		for _, n := range tx.Nodes() {
			n = proto.Clone(n).(*minkepb.Node)
			n.SecretHash = nil
			if ms := n.GetManagerStatus(); ms != nil && s.cluster != nil {
				ms.Leader = n.GetMeta().GetId() == leader
				ms.Reachability = minkepb.ManagerStatus_UNREACHABLE
				if ms.Leader || s.cluster.Reachable(n.GetMeta().GetId()) {
					ms.Reachability = minkepb.ManagerStatus_REACHABLE
				}
			}
			resp.Nodes = append(resp.Nodes, n)
		}
		return nil
	})
	return resp, nil
}

// findNode resolves an ID, a hostname or a unique ID prefix.
func findNode(tx raftstore.ReadTx, ref string) (*minkepb.Node, error) {
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "a node ID, ID prefix or hostname is required")
	}
	if n := tx.Node(ref); n != nil {
		return n, nil
	}
	var matches []*minkepb.Node
	for _, n := range tx.Nodes() {
		if n.GetDescription().GetHostname() == ref {
			matches = append(matches, n)
		}
	}
	if len(matches) == 0 {
		for _, n := range tx.Nodes() {
			if strings.HasPrefix(n.GetMeta().GetId(), ref) {
				matches = append(matches, n)
			}
		}
	}
	switch len(matches) {
	case 0:
		return nil, status.Errorf(codes.NotFound, "node %q not found: give an ID, ID prefix or hostname from 'swarmctl node ls'", ref)
	case 1:
		return matches[0], nil
	}
	return nil, status.Errorf(codes.InvalidArgument, "node %q is ambiguous (%d nodes match): use the node ID", ref, len(matches))
}

// lookupNode resolves a node reference on the current state.
func (s *Server) lookupNode(ref string) (*minkepb.Node, error) {
	var node *minkepb.Node
	err := s.store.View(func(tx raftstore.ReadTx) error {
		var err error
		node, err = findNode(tx, ref)
		return err
	})
	return node, err
}

// checkQuorumWithout refuses to take manager id out of Raft when the
// managers left could not form a quorum, or when it is the last one.
func (s *Server) checkQuorumWithout(id, verb string) error {
	servers, err := s.cluster.Servers()
	if err != nil {
		return status.Errorf(codes.Unavailable, "reading the managers: %v", err)
	}
	var voters, reachable int
	member := false
	for _, sv := range servers {
		if !sv.Voter {
			continue
		}
		if sv.ID == id {
			member = true
			continue
		}
		voters++
		if s.cluster.Reachable(sv.ID) {
			reachable++
		}
	}
	if !member {
		return nil
	}
	if voters == 0 {
		return status.Errorf(codes.FailedPrecondition, "cannot %s the last manager: the cluster would have no managers", verb)
	}
	if need := voters/2 + 1; reachable < need {
		return status.Errorf(codes.FailedPrecondition,
			"cannot %s this manager: the %d other managers would need %d reachable for quorum, and only %d are",
			verb, voters, need, reachable)
	}
	if leader, _ := s.cluster.LeaderID(); leader == id {
		return status.Errorf(codes.FailedPrecondition,
			"cannot %s the leader: stop its manager process first (another manager takes over), then retry", verb)
	}
	return nil
}

// UpdateNodeRole records the role the operator wants. Demoting a manager
// takes it out of Raft at once (refused if the rest would lose quorum);
// promoting a worker lets it join the managers.
func (s *Server) UpdateNodeRole(ctx context.Context, req *minkepb.UpdateNodeRoleRequest) (*minkepb.UpdateNodeRoleResponse, error) {
	node, err := s.lookupNode(req.GetNode())
	if err != nil {
		return nil, err
	}
	id := node.GetMeta().GetId()
	role := req.GetRole()
	if role != minkepb.NodeRole_MANAGER && role != minkepb.NodeRole_WORKER {
		return nil, status.Errorf(codes.InvalidArgument, "invalid role %v: want MANAGER or WORKER", role)
	}
	if role == minkepb.NodeRole_WORKER && node.GetRole() == minkepb.NodeRole_MANAGER {
		if err := s.checkQuorumWithout(id, "demote"); err != nil {
			return nil, err
		}
		if err := s.cluster.RemoveServer(ctx, id); err != nil {
			return nil, toStatus(err)
		}
	}
	// A promoted worker gets the manager token through its session and
	// joins the managers itself; its role changes when it has joined. A
	// demoted manager has left Raft above and stops its manager role.
	err = s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		n := tx.Node(id)
		if n == nil {
			return fmt.Errorf("%w: node %s", raftstore.ErrNotFound, id)
		}
		n = proto.Clone(n).(*minkepb.Node)
		if n.Spec == nil {
			n.Spec = &minkepb.NodeSpec{}
		}
		n.Spec.DesiredRole = role
		if role == minkepb.NodeRole_WORKER {
			n.Role, n.ManagerStatus = minkepb.NodeRole_WORKER, nil
		}
		node = n
		return tx.Update(n)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("manager demoted", "node_id", id)
	return &minkepb.UpdateNodeRoleResponse{Node: node}, nil
}

// RemoveNode removes a node from the cluster: a manager also leaves Raft.
// Its tasks are replaced elsewhere and its identity stops working, so it
// cannot reconnect.
func (s *Server) RemoveNode(ctx context.Context, req *minkepb.RemoveNodeRequest) (*minkepb.RemoveNodeResponse, error) {
	node, err := s.lookupNode(req.GetNode())
	if err != nil {
		return nil, err
	}
	id := node.GetMeta().GetId()
	if node.GetStatus().GetState() == minkepb.NodeStatus_READY && !req.GetForce() {
		return nil, status.Errorf(codes.FailedPrecondition,
			"node %s is up: stop it first, or use --force to remove it while it runs", node.GetDescription().GetHostname())
	}
	if node.GetRole() == minkepb.NodeRole_MANAGER {
		if err := s.checkQuorumWithout(id, "remove"); err != nil {
			return nil, err
		}
		if err := s.cluster.RemoveServer(ctx, id); err != nil {
			return nil, toStatus(err)
		}
	}
	err = s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		if n := tx.Node(id); n != nil {
			// Its certificate is refused from now on, also where node
			// records are not consulted (Raft).
			if cert := n.GetCertificate(); cert.GetSerial() != "" {
				c := proto.Clone(tx.Cluster()).(*minkepb.Cluster)
				ca.Revoke(c, cert, time.Now())
				if err := tx.Update(c); err != nil {
					return err
				}
			}
			return tx.Delete(n)
		}
		return nil
	})
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("node removed", "node_id", id)
	return &minkepb.RemoveNodeResponse{}, nil
}

// Backup returns a consistent snapshot of the store.
func (s *Server) Backup(ctx context.Context, _ *minkepb.BackupRequest) (*minkepb.BackupResponse, error) {
	snap, index := s.cluster.Backup()
	data, err := proto.Marshal(snap)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encoding backup: %v", err)
	}
	return &minkepb.BackupResponse{Snapshot: data, Index: index}, nil
}

// UpdateNode patches a node's availability and labels. Draining a node
// makes the orchestrator move its tasks; pausing only stops new ones.
func (s *Server) UpdateNode(ctx context.Context, req *minkepb.UpdateNodeRequest) (*minkepb.UpdateNodeResponse, error) {
	if err := validateNodeUpdate(req); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	var out *minkepb.Node
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		n, err := findNode(tx.ReadTx, req.GetNode())
		if err != nil {
			return err
		}
		n = proto.Clone(n).(*minkepb.Node)
		if n.Spec == nil {
			n.Spec = &minkepb.NodeSpec{}
		}
		for _, k := range req.GetLabelRm() {
			if _, ok := n.Spec.GetLabels()[k]; !ok {
				return status.Errorf(codes.InvalidArgument, "invalid --label-rm %q: node %s has no such label", k, n.GetDescription().GetHostname())
			}
			delete(n.Spec.Labels, k)
		}
		if len(req.GetLabelAdd()) > 0 && n.Spec.Labels == nil {
			n.Spec.Labels = map[string]string{}
		}
		for k, v := range req.GetLabelAdd() {
			n.Spec.Labels[k] = v
		}
		if req.GetSetAvailability() {
			n.Spec.Availability = req.GetAvailability()
		}
		out = n
		return tx.Update(n)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	out = proto.Clone(out).(*minkepb.Node)
	out.SecretHash = nil
	return &minkepb.UpdateNodeResponse{Node: out}, nil
}

// RotateJoinToken replaces the worker or manager join token. Nodes that
// joined already keep working (they prove themselves with their node
// secret); only new joins need the new token.
func (s *Server) RotateJoinToken(ctx context.Context, req *minkepb.RotateJoinTokenRequest) (*minkepb.RotateJoinTokenResponse, error) {
	role := req.GetRole()
	if role != minkepb.NodeRole_WORKER && role != minkepb.NodeRole_MANAGER {
		return nil, status.Errorf(codes.InvalidArgument, "invalid role %v: want WORKER or MANAGER", role)
	}
	var tokens *minkepb.JoinTokens
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		c := tx.Cluster()
		if c == nil {
			return status.Error(codes.Unavailable, "cluster is not initialised yet")
		}
		c = proto.Clone(c).(*minkepb.Cluster)
		if c.JoinTokens == nil {
			c.JoinTokens = &minkepb.JoinTokens{}
		}
		if role == minkepb.NodeRole_WORKER {
			c.JoinTokens.Worker = ca.NewClusterToken(c, ca.RoleWorker)
		} else {
			c.JoinTokens.Manager = ca.NewClusterToken(c, ca.RoleManager)
		}
		tokens = c.JoinTokens
		return tx.Update(c)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("join token rotated", "role", strings.ToLower(role.String()))
	return &minkepb.RotateJoinTokenResponse{JoinTokens: tokens}, nil
}
