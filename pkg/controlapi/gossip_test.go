package controlapi

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/membership"
	"github.com/minke-io/minke/pkg/raftstore"
)

func member(id string, keys ...[]byte) membership.Member {
	m := membership.Member{NodeID: id}
	for _, k := range keys {
		m.Meta.Keys = append(m.Meta.Keys, membership.KeyFingerprint(k))
	}
	return m
}

func TestGossipRotationPhases(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	install := &minkepb.Cluster{GossipKey: oldKey, GossipKeys: [][]byte{oldKey, newKey},
		GossipKeyRotation: &minkepb.GossipKeyRotation{NewKey: newKey, Phase: minkepb.GossipKeyRotation_INSTALL}}

	// INSTALL waits for every member to hold the new key.
	members := []membership.Member{member("a", oldKey, newKey), member("b", oldKey), member("c")}
	if got := GossipLagging(install, members); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("lagging in INSTALL = %v, want [b c]", got)
	}
	if next := NextGossipPhase(install, members); next != nil {
		t.Fatalf("advanced while b and c lag: %v", next)
	}
	members = []membership.Member{member("a", oldKey, newKey), member("b", newKey, oldKey)}
	use := NextGossipPhase(install, members)
	if use.GetGossipKeyRotation().GetPhase() != minkepb.GossipKeyRotation_USE || !bytes.Equal(use.GetGossipKey(), newKey) {
		t.Fatalf("after INSTALL: %v, want phase USE with the new key primary", use)
	}
	if p, keys := GossipKeyring(use); !bytes.Equal(p, newKey) || len(keys) != 2 {
		t.Errorf("keyring in USE = %x, %d keys; want the new key primary and both keys", p, len(keys))
	}
	if install.GetGossipKeyRotation().GetPhase() != minkepb.GossipKeyRotation_INSTALL {
		t.Error("NextGossipPhase changed its input")
	}

	// USE waits for every member to encrypt with the new key.
	if got := GossipLagging(use, members); !slices.Equal(got, []string{"a"}) {
		t.Errorf("lagging in USE = %v, want [a]", got)
	}
	members[0] = member("a", newKey, oldKey)
	done := NextGossipPhase(use, members)
	if done.GetGossipKeyRotation() != nil || !bytes.Equal(done.GetGossipKey(), newKey) || len(done.GetGossipKeys()) != 1 {
		t.Fatalf("after USE: %v, want the new key alone and no rotation", done)
	}
	if NextGossipPhase(done, members) != nil || GossipLagging(done, members) != nil {
		t.Error("a finished rotation advanced again")
	}
	// A cluster from before keyrings (gossip_key only) holds its one key.
	if p, keys := GossipKeyring(&minkepb.Cluster{GossipKey: oldKey}); !bytes.Equal(p, oldKey) || len(keys) != 1 {
		t.Errorf("keyring of a plain cluster = %x, %d keys", p, len(keys))
	}
}

func TestRotateGossipKey(t *testing.T) {
	s, n := newServer(t)
	ctx := context.Background()
	if _, err := s.RotateGossipKey(ctx, nil); status.Code(err) != codes.Unavailable {
		t.Fatalf("rotation without a cluster: %v, want Unavailable", err)
	}
	oldKey := bytes.Repeat([]byte{7}, 32)
	storetest.Update(t, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Cluster{Meta: &minkepb.Meta{Id: "c"}, GossipKey: oldKey})
	})
	resp, err := s.RotateGossipKey(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := resp.GetStatus()
	if !st.GetRotating() || st.GetPrimary() != membership.KeyFingerprint(oldKey) || st.GetNewKey() == st.GetPrimary() ||
		!slices.Equal(st.GetKeys(), []string{st.GetPrimary(), st.GetNewKey()}) {
		t.Fatalf("status = %+v", st)
	}
	var c *minkepb.Cluster
	_ = n.View(func(tx raftstore.ReadTx) error { c = tx.Cluster(); return nil })
	if nk := c.GetGossipKeyRotation().GetNewKey(); len(nk) != GossipKeySize || bytes.Equal(nk, oldKey) ||
		!bytes.Equal(c.GetGossipKey(), oldKey) {
		t.Fatalf("stored rotation: key %x new %x", c.GetGossipKey(), nk)
	}
	_, err = s.RotateGossipKey(ctx, nil)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), st.GetNewKey()) {
		t.Fatalf("second rotation: %v, want FailedPrecondition naming key %s", err, st.GetNewKey())
	}
	got, err := s.GetGossipKeyStatus(ctx, nil)
	if err != nil || got.GetStatus().GetPhase() != minkepb.GossipKeyRotation_INSTALL {
		t.Fatalf("GetGossipKeyStatus = %v, %v", got, err)
	}
}
