package client

import (
	"context"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// CreateNetwork creates an overlay network and returns it as stored, with
// its subnet, gateway and VNI allocated.
func (c *Client) CreateNetwork(ctx context.Context, spec *minkepb.NetworkSpec) (*minkepb.Network, error) {
	resp, err := c.ctl.CreateNetwork(ctx, &minkepb.CreateNetworkRequest{Spec: spec})
	if err != nil {
		return nil, err
	}
	return resp.GetNetwork(), nil
}

// GetNetwork returns the network ref names (an ID, a unique ID prefix or a
// name) and the names of the services attached to it.
func (c *Client) GetNetwork(ctx context.Context, ref string) (*minkepb.Network, []string, error) {
	resp, err := c.ctl.GetNetwork(ctx, &minkepb.GetNetworkRequest{Network: ref})
	if err != nil {
		return nil, nil, err
	}
	return resp.GetNetwork(), resp.GetServices(), nil
}

// ListNetworks returns every network, ordered by name.
func (c *Client) ListNetworks(ctx context.Context) ([]*minkepb.Network, error) {
	resp, err := c.ctl.ListNetworks(ctx, &minkepb.ListNetworksRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetNetworks(), nil
}

// RemoveNetwork removes the network ref names; the manager refuses while a
// service or task uses it.
func (c *Client) RemoveNetwork(ctx context.Context, ref string) error {
	_, err := c.ctl.RemoveNetwork(ctx, &minkepb.RemoveNetworkRequest{Network: ref})
	return err
}
