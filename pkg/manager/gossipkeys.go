package manager

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/controlapi"
	"github.com/minke-io/minke/pkg/membership"
	"github.com/minke-io/minke/pkg/raftstore"
)

// keyBroadcastTimeout bounds how long a keyring change waits for its meta
// update to be gossiped; progress is re-read from members anyway.
const keyBroadcastTimeout = 2 * time.Second

// GossipMembers implements controlapi.GossipMembers: the alive members
// with the key fingerprints they advertise.
func (m *Manager) GossipMembers() []membership.Member { return m.members.Members() }

var _ controlapi.GossipMembers = (*Manager)(nil)

// followGossipKeys keeps this manager's gossip keyring equal to the
// Cluster's, on every manager, leader or not, until ctx ends. See
// controlapi's gossip.go for the rotation protocol.
func (m *Manager) followGossipKeys(ctx context.Context) {
	log := m.log.With("controller", "gossip-keys")
	var cluster *minkepb.Cluster
	sub, err := m.raft.ViewAndWatch(func(tx raftstore.ReadTx) error { cluster = tx.Cluster(); return nil })
	if err != nil {
		log.Error("cannot watch the cluster's gossip keys", "err", err)
		return
	}
	defer sub.Cancel()
	var applied []string // fingerprints of the keyring last applied
	for {
		if cluster != nil {
			primary, keys := controlapi.GossipKeyring(cluster)
			want := []string{membership.KeyFingerprint(primary)}
			for _, k := range keys {
				want = append(want, membership.KeyFingerprint(k))
			}
			if !slices.Equal(want, applied) && len(primary) > 0 {
				err := m.members.SetKeys(primary, keys, keyBroadcastTimeout)
				switch {
				case err == nil:
					applied = want
				case errors.Is(err, membership.ErrShutdown):
					return
				default:
					// The next store change retries; a key the store holds
					// is valid, so this is not expected.
					log.Error("applying the cluster's gossip keys failed", "err", err)
				}
			}
		}
		if _, err := sub.Next(ctx); err != nil {
			return
		}
		_ = m.raft.View(func(tx raftstore.ReadTx) error { cluster = tx.Cluster(); return nil })
	}
}

// driveGossipKeyRotation runs on the leader: it moves a gossip key
// rotation to its next phase as soon as every alive member has finished
// the current one, reacting to store changes and to gossip meta updates.
func (m *Manager) driveGossipKeyRotation(ctx context.Context) error {
	log := m.log.With("controller", "gossip-key-rotation")
	sub, err := m.raft.ViewAndWatch(func(raftstore.ReadTx) error { return nil })
	if err != nil {
		return err
	}
	defer sub.Cancel()
	var lastLagging string
	for {
		var retry <-chan time.Time
		changed := m.members.Changed()
		var c *minkepb.Cluster
		_ = m.raft.View(func(tx raftstore.ReadTx) error { c = tx.Cluster(); return nil })
		if r := c.GetGossipKeyRotation(); r != nil {
			members := m.members.Members()
			if lagging := strings.Join(controlapi.GossipLagging(c, members), ","); lagging != "" {
				if lagging != lastLagging {
					log.Info("gossip key rotation waiting for members", "phase", r.GetPhase().String(),
						"new_key", membership.KeyFingerprint(r.GetNewKey()), "lagging", lagging)
					lastLagging = lagging
				}
			} else if err := m.advanceGossipRotation(ctx, members); err != nil {
				log.Warn("advancing the gossip key rotation failed; retrying", "err", err)
				retry = time.After(time.Second)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return nil
		case <-sub.Ready():
			sub.Drain()
		case <-changed:
		case <-retry:
		}
	}
}

// advanceGossipRotation commits the rotation's next phase, re-checking in
// the transaction that it is still due.
func (m *Manager) advanceGossipRotation(ctx context.Context, members []membership.Member) error {
	var phase, key string
	err := m.raft.Update(ctx, func(tx *raftstore.WriteTx) error {
		c := tx.Cluster()
		next := controlapi.NextGossipPhase(c, members)
		if next == nil {
			return nil
		}
		key = membership.KeyFingerprint(c.GetGossipKeyRotation().GetNewKey())
		phase = "done"
		if r := next.GetGossipKeyRotation(); r != nil {
			phase = r.GetPhase().String()
		}
		return tx.Update(next)
	})
	if err == nil && phase != "" {
		m.log.Info("gossip key rotation advanced", "controller", "gossip-key-rotation", "new_key", key, "phase", phase,
			"members", len(members))
	}
	return err
}
