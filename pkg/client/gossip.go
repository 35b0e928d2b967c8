package client

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// RotateGossipKey starts replacing the cluster's gossip key and returns the
// key status once the rotation is committed (it then runs on its own; see
// WaitGossipKeyRotation).
func (c *Client) RotateGossipKey(ctx context.Context) (*minkepb.GossipKeyStatus, error) {
	resp, err := c.ctl.RotateGossipKey(ctx, &minkepb.RotateGossipKeyRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetStatus(), nil
}

// GossipKeyStatus reports the gossip keys (by fingerprint) and any rotation
// in progress.
func (c *Client) GossipKeyStatus(ctx context.Context) (*minkepb.GossipKeyStatus, error) {
	resp, err := c.ctl.GetGossipKeyStatus(ctx, &minkepb.GetGossipKeyStatusRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetStatus(), nil
}

// gossipPollInterval paces WaitGossipKeyRotation; a rotation takes a few
// gossip rounds (hundreds of milliseconds) on a healthy LAN cluster.
const gossipPollInterval = 250 * time.Millisecond

// WaitGossipKeyRotation returns the final status once no rotation runs,
// calling progress with each status that differs from the one before. A
// manager answering Unavailable (leadership moving) is asked again; the
// rotation goes on under the next leader. It returns ctx's error, or the
// last Unavailable one, with the last status if ctx ends first.
func (c *Client) WaitGossipKeyRotation(ctx context.Context, progress func(*minkepb.GossipKeyStatus)) (*minkepb.GossipKeyStatus, error) {
	tick := time.NewTicker(gossipPollInterval)
	defer tick.Stop()
	var last *minkepb.GossipKeyStatus
	for {
		st, err := c.GossipKeyStatus(ctx)
		if status.Code(err) == codes.Unavailable && ctx.Err() == nil {
			select {
			case <-ctx.Done():
				return last, err
			case <-tick.C:
				continue
			}
		}
		if err != nil {
			return last, err
		}
		if progress != nil && (last == nil || !sameStatus(last, st)) {
			progress(st)
		}
		last = st
		if !st.GetRotating() {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-tick.C:
		}
	}
}

func sameStatus(a, b *minkepb.GossipKeyStatus) bool {
	return a.GetRotating() == b.GetRotating() && a.GetPhase() == b.GetPhase() && a.GetPrimary() == b.GetPrimary() &&
		len(a.GetLagging()) == len(b.GetLagging())
}
