package client

import (
	"context"
	"errors"
	"io"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// ListNodes returns every node the cluster knows.
func (c *Client) ListNodes(ctx context.Context) ([]*minkepb.Node, error) {
	resp, err := c.ctl.ListNodes(ctx, &minkepb.ListNodesRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetNodes(), nil
}

// GetCluster returns the cluster object and the address (host:port) of the
// answering manager's built-in registry, as the manager reports it.
func (c *Client) GetCluster(ctx context.Context) (*minkepb.Cluster, string, error) {
	resp, err := c.ctl.GetCluster(ctx, &minkepb.GetClusterRequest{})
	if err != nil {
		return nil, "", err
	}
	return resp.GetCluster(), resp.GetRegistryAddr(), nil
}

// ServiceLogs streams the logs of the service ref names, calling fn for each
// message in arrival order. Without follow it returns nil once the manager
// has sent what exists; with follow it runs until ctx is done (ctx.Err()),
// the stream fails, or fn returns an error (returned as is).
func (c *Client) ServiceLogs(ctx context.Context, ref string, follow bool, fn func(*minkepb.LogMessage) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ctl.ServiceLogs(ctx, &minkepb.ServiceLogsRequest{Service: ref, Follow: follow})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return err
		}
		for _, m := range resp.GetMessages() {
			if err := fn(m); err != nil {
				return err
			}
		}
	}
}

// UpdateNodeRole promotes or demotes a node (ID, ID prefix or hostname).
func (c *Client) UpdateNodeRole(ctx context.Context, ref string, role minkepb.NodeRole) (*minkepb.Node, error) {
	resp, err := c.ctl.UpdateNodeRole(ctx, &minkepb.UpdateNodeRoleRequest{Node: ref, Role: role})
	if err != nil {
		return nil, err
	}
	return resp.GetNode(), nil
}

// RemoveNode removes a node from the cluster.
func (c *Client) RemoveNode(ctx context.Context, ref string, force bool) error {
	_, err := c.ctl.RemoveNode(ctx, &minkepb.RemoveNodeRequest{Node: ref, Force: force})
	return err
}

// Backup returns a consistent snapshot of the cluster state (a
// minke.v1.Snapshot in protobuf encoding) and the Raft index it reflects.
func (c *Client) Backup(ctx context.Context) ([]byte, uint64, error) {
	resp, err := c.ctl.Backup(ctx, &minkepb.BackupRequest{})
	if err != nil {
		return nil, 0, err
	}
	return resp.GetSnapshot(), resp.GetIndex(), nil
}

// UpdateNode patches a node's availability (when availability is not nil)
// and labels.
func (c *Client) UpdateNode(ctx context.Context, ref string, availability *minkepb.NodeSpec_Availability,
	labelAdd map[string]string, labelRm []string) (*minkepb.Node, error) {
	req := &minkepb.UpdateNodeRequest{Node: ref, LabelAdd: labelAdd, LabelRm: labelRm}
	if availability != nil {
		req.SetAvailability, req.Availability = true, *availability
	}
	resp, err := c.ctl.UpdateNode(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.GetNode(), nil
}

// RotateJoinToken replaces a role's join token and returns the new tokens.
func (c *Client) RotateJoinToken(ctx context.Context, role minkepb.NodeRole) (*minkepb.JoinTokens, error) {
	resp, err := c.ctl.RotateJoinToken(ctx, &minkepb.RotateJoinTokenRequest{Role: role})
	if err != nil {
		return nil, err
	}
	return resp.GetJoinTokens(), nil
}
