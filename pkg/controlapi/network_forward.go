package controlapi

import (
	"context"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// The network calls go to the leader like every other (see Forwarder).

func (f *Forwarder) CreateNetwork(ctx context.Context, r *minkepb.CreateNetworkRequest) (*minkepb.CreateNetworkResponse, error) {
	return unary(f, ctx, false, r, f.local.CreateNetwork, minkepb.ControlClient.CreateNetwork)
}

func (f *Forwarder) GetNetwork(ctx context.Context, r *minkepb.GetNetworkRequest) (*minkepb.GetNetworkResponse, error) {
	return unary(f, ctx, true, r, f.local.GetNetwork, minkepb.ControlClient.GetNetwork)
}

func (f *Forwarder) ListNetworks(ctx context.Context, r *minkepb.ListNetworksRequest) (*minkepb.ListNetworksResponse, error) {
	return unary(f, ctx, true, r, f.local.ListNetworks, minkepb.ControlClient.ListNetworks)
}

func (f *Forwarder) RemoveNetwork(ctx context.Context, r *minkepb.RemoveNetworkRequest) (*minkepb.RemoveNetworkResponse, error) {
	return unary(f, ctx, false, r, f.local.RemoveNetwork, minkepb.ControlClient.RemoveNetwork)
}
