package manager

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// expireRestartHolds ends the hold of nodes whose planned restart (see
// dispatcher.AnnounceRestart) outlasted its grace period, until ctx ends
// (the leader's term): a node back in gossip or holding a session stays
// READY, any other is marked DOWN, and the orchestrator replaces its
// tasks. A node back in time has had its hold cleared by its return.
func (m *Manager) expireRestartHolds(ctx context.Context) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			m.expireRestartHoldsAt(ctx, now)
		}
	}
}

func (m *Manager) expireRestartHoldsAt(ctx context.Context, now time.Time) {
	var due []string
	_ = m.raft.View(func(tx raftstore.ReadTx) error {
		for _, n := range tx.Nodes() {
			if d := n.GetStatus().GetRestartDeadline(); d != nil && !now.Before(d.AsTime()) {
				due = append(due, n.GetMeta().GetId())
			}
		}
		return nil
	})
	for _, id := range due {
		back := m.inGossip(id) || m.disp.HasSession(id)
		err := m.raft.Update(ctx, func(tx *raftstore.WriteTx) error {
			n := tx.Node(id)
			if n.GetStatus().GetRestartDeadline() == nil {
				return nil // back meanwhile
			}
			n = proto.Clone(n).(*minkepb.Node)
			n.Status.RestartDeadline = nil
			if back {
				n.Status.State, n.Status.Message = minkepb.NodeStatus_READY, "alive in gossip"
			} else {
				n.Status.State, n.Status.Message = minkepb.NodeStatus_DOWN, "did not come back from its planned restart in time"
			}
			return tx.Update(n)
		})
		if err != nil {
			m.log.Warn("ending a planned-restart hold failed", "node_id", id, "err", err)
			continue
		}
		if !back {
			m.log.Info("node not back from its planned restart within the grace period: DOWN", "node_id", id)
		}
	}
}
