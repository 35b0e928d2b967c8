package controlapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/membership"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Gossip key rotation. The leader drives it one phase at a time through
// the Cluster object, and every node follows the Cluster's keyring
// (managers from their store, workers through their dispatcher session):
//
//  1. RotateGossipKey commits INSTALL: keys = [old, new], primary old.
//     Every node adds the new key and still encrypts with the old one.
//  2. Once every alive member advertises the new key in its gossip meta,
//     the leader commits USE: primary new, keys = [new, old]. Nodes switch
//     one by one; all of them still accept both keys, so none is cut off.
//  3. Once every alive member advertises the new key as primary, the leader
//     commits the end: keys = [new], no rotation. Nodes drop the old key
//     and old-key packets are refused from then on.
//
// A node that is down during a rotation catches up when it returns: a
// manager reads the keys from its Raft log, a worker gets the primary key
// when it joins again and the keyring in its session.

// GossipKeySize is the size of generated gossip keys (AES-256).
const GossipKeySize = 32

// GossipMembers is the gossip view the key status needs; the manager
// implements it. Without it the status lists no lagging members.
type GossipMembers interface {
	// GossipMembers returns the alive members with the key fingerprints
	// they advertise.
	GossipMembers() []membership.Member
}

// GossipKeyring returns the keys a node of cluster c must hold: primary
// encrypts, every key in keys (primary included) decrypts.
func GossipKeyring(c *minkepb.Cluster) (primary []byte, keys [][]byte) {
	primary = c.GetGossipKey()
	keys = c.GetGossipKeys()
	if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, primary) }) {
		keys = append([][]byte{primary}, keys...)
	}
	return primary, keys
}

// GossipLagging returns the members (node IDs, sorted) that have not
// finished the current phase of c's rotation: in INSTALL those that do not
// advertise the new key, in USE those that do not advertise it as primary.
// It returns nil when no rotation runs.
func GossipLagging(c *minkepb.Cluster, members []membership.Member) []string {
	r := c.GetGossipKeyRotation()
	if r == nil {
		return nil
	}
	fp := membership.KeyFingerprint(r.GetNewKey())
	var out []string
	for _, m := range members {
		keys := m.Meta.Keys
		done := slices.Contains(keys, fp)
		if r.GetPhase() == minkepb.GossipKeyRotation_USE {
			done = len(keys) > 0 && keys[0] == fp
		}
		if !done {
			out = append(out, m.NodeID)
		}
	}
	slices.Sort(out)
	return out
}

// NextGossipPhase returns c advanced to the next phase of its rotation, or
// nil when no rotation runs or some member still lags (see GossipLagging).
// The caller commits it.
func NextGossipPhase(c *minkepb.Cluster, members []membership.Member) *minkepb.Cluster {
	r := c.GetGossipKeyRotation()
	if r == nil || len(GossipLagging(c, members)) > 0 {
		return nil
	}
	next := proto.Clone(c).(*minkepb.Cluster)
	newKey, oldKey := r.GetNewKey(), c.GetGossipKey()
	switch r.GetPhase() {
	case minkepb.GossipKeyRotation_INSTALL:
		next.GossipKey = newKey
		next.GossipKeys = [][]byte{newKey, oldKey}
		next.GossipKeyRotation.Phase = minkepb.GossipKeyRotation_USE
	default: // USE: every member encrypts with the new key; drop the old.
		next.GossipKeys = [][]byte{newKey}
		next.GossipKeyRotation = nil
	}
	return next
}

// gossipKeyStatus describes c's keys by fingerprint.
func gossipKeyStatus(c *minkepb.Cluster, members []membership.Member) *minkepb.GossipKeyStatus {
	primary, keys := GossipKeyring(c)
	st := &minkepb.GossipKeyStatus{Primary: membership.KeyFingerprint(primary)}
	for _, k := range keys {
		st.Keys = append(st.Keys, membership.KeyFingerprint(k))
	}
	if r := c.GetGossipKeyRotation(); r != nil {
		st.Rotating, st.Phase, st.NewKey = true, r.GetPhase(), membership.KeyFingerprint(r.GetNewKey())
		st.Lagging = GossipLagging(c, members)
	}
	return st
}

func (s *Server) gossipMembers() []membership.Member {
	if g, ok := s.cluster.(GossipMembers); ok {
		return g.GossipMembers()
	}
	return nil
}

// RotateGossipKey starts a rotation to a fresh random key. It answers once
// the rotation is committed; the leader rolls it out from there.
func (s *Server) RotateGossipKey(ctx context.Context, _ *minkepb.RotateGossipKeyRequest) (*minkepb.RotateGossipKeyResponse, error) {
	key := make([]byte, GossipKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, status.Errorf(codes.Internal, "generating a gossip key: %v", err)
	}
	var c *minkepb.Cluster
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		c = tx.Cluster()
		if c == nil {
			return status.Error(codes.Unavailable, "cluster is not initialised yet")
		}
		if r := c.GetGossipKeyRotation(); r != nil {
			return status.Errorf(codes.FailedPrecondition,
				"a gossip key rotation to key %s is already running (phase %s, started %s): wait for it to finish ('swarmctl cluster rotate-gossip-key --status' shows it)",
				membership.KeyFingerprint(r.GetNewKey()), r.GetPhase(), r.GetStartedAt().AsTime().Format(time.RFC3339))
		}
		if len(c.GetGossipKey()) == 0 {
			return status.Error(codes.FailedPrecondition, "this cluster gossips without encryption; a key cannot be rotated in")
		}
		c = proto.Clone(c).(*minkepb.Cluster)
		c.GossipKeys = [][]byte{c.GetGossipKey(), key}
		c.GossipKeyRotation = &minkepb.GossipKeyRotation{NewKey: key, Phase: minkepb.GossipKeyRotation_INSTALL,
			StartedAt: timestamppb.Now()}
		return tx.Update(c)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	st := gossipKeyStatus(c, s.gossipMembers())
	s.log.Info("gossip key rotation started", "old_key", st.GetPrimary(), "new_key", st.GetNewKey())
	return &minkepb.RotateGossipKeyResponse{Status: st}, nil
}

// GetGossipKeyStatus reports the keys and the rotation's progress.
func (s *Server) GetGossipKeyStatus(ctx context.Context, _ *minkepb.GetGossipKeyStatusRequest) (*minkepb.GetGossipKeyStatusResponse, error) {
	var c *minkepb.Cluster
	_ = s.store.View(func(tx raftstore.ReadTx) error { c = tx.Cluster(); return nil })
	if c == nil {
		return nil, status.Error(codes.Unavailable, "cluster is not initialised yet")
	}
	return &minkepb.GetGossipKeyStatusResponse{Status: gossipKeyStatus(c, s.gossipMembers())}, nil
}

// RotateGossipKey is a write: the leader commits it.
func (f *Forwarder) RotateGossipKey(ctx context.Context, r *minkepb.RotateGossipKeyRequest) (*minkepb.RotateGossipKeyResponse, error) {
	return unary(f, ctx, false, r, f.local.RotateGossipKey, minkepb.ControlClient.RotateGossipKey)
}

// GetGossipKeyStatus runs on the leader, whose gossip view drives the
// rotation.
func (f *Forwarder) GetGossipKeyStatus(ctx context.Context, r *minkepb.GetGossipKeyStatusRequest) (*minkepb.GetGossipKeyStatusResponse, error) {
	return unary(f, ctx, true, r, f.local.GetGossipKeyStatus, minkepb.ControlClient.GetGossipKeyStatus)
}
