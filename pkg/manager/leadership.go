package manager

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/allocator"
	"github.com/minke-io/minke/pkg/dispatcher"
	"github.com/minke-io/minke/pkg/membership"
	"github.com/minke-io/minke/pkg/orchestrator"
	"github.com/minke-io/minke/pkg/raftstore"
)

// DownGracePeriod is how long a new leader waits before it marks nodes it
// has not seen in gossip DOWN (workers rejoin gossip every 3s).
const DownGracePeriod = 8 * time.Second

// runLeadership starts the leader-only controllers whenever this node
// becomes leader and stops them (and waits for them) when it stops being
// leader or ctx ends. Gossip events are consumed all the time, and turned
// into node state only while leader.
func (m *Manager) runLeadership(ctx context.Context) {
	var (
		cancel func()
		wg     sync.WaitGroup
	)
	stop := func() {
		if cancel != nil {
			cancel()
			wg.Wait()
			cancel = nil
			m.log.Info("leader controllers stopped")
		}
	}
	defer stop()
	start := func() {
		if cancel != nil {
			return
		}
		var lctx context.Context
		lctx, cancel = context.WithCancel(ctx)
		// A new leader first applies everything committed before it took
		// over, so its controllers start from the latest state.
		bctx, bcancel := context.WithTimeout(lctx, 10*time.Second)
		if err := m.raft.Barrier(bctx); err != nil {
			m.log.Warn("leader barrier failed; controllers start anyway", "err", err)
		}
		bcancel()
		if err := m.recordSelf(lctx); err != nil {
			m.log.Warn("recording this manager's addresses", "err", err)
		}
		run := func(fn func(context.Context) error) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(lctx); err != nil {
					m.log.Warn("leader controller stopped", "err", err)
				}
			}()
		}
		placement := orchestrator.NewPlacement(m.raft, time.Now, m.cfg.Logger)
		replicated := orchestrator.NewReplicated(m.raft, m.resolveImage, time.Now, m.cfg.Logger)
		replicated.PlaceWith(placement) // new tasks are committed already ASSIGNED
		run(replicated.Run)
		run(placement.Run)
		run(orchestrator.NewUpdater(m.raft, m.resolveImage, time.Now, m.cfg.Logger).Run)
		run(orchestrator.NewReaper(m.raft, m.cfg.Logger).Run)
		run(allocator.NewWaiter(m.raft, time.Now, m.cfg.Logger).Run)
		run(m.driveGossipKeyRotation)
		run(m.expireRestartHolds)
		m.syncNodes(lctx, false)
		// Nodes this leader has not heard of yet are marked DOWN only after
		// a grace period: after a control-plane restart, workers need a few
		// seconds to find the managers in gossip again.
		run(func(ctx context.Context) error {
			select {
			case <-ctx.Done():
			case <-time.After(DownGracePeriod):
				m.syncNodes(ctx, true)
			}
			return nil
		})
		m.log.Info("leader controllers started")
	}
	if m.raft.IsLeader() {
		start()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-m.raft.LeaderCh():
			if leader {
				start()
			} else {
				stop()
			}
		case ev, ok := <-m.members.Events():
			if !ok {
				return
			}
			if cancel != nil {
				m.applyGossip(ctx, ev)
			}
		}
	}
}

// applyGossip records a node's liveness as memberlist sees it.
func (m *Manager) applyGossip(ctx context.Context, ev membership.Event) {
	state := minkepb.NodeStatus_READY
	msg := "alive in gossip"
	if ev.Kind == membership.Leave {
		state, msg = minkepb.NodeStatus_DOWN, dispatcher.GossipDownMessage
	}
	m.setNodeState(ctx, ev.NodeID, state, msg)
}

// syncNodes corrects every node's state from the current gossip view, for a
// new leader that missed events.
//
// Only with markDown are nodes missing from gossip marked DOWN.
func (m *Manager) syncNodes(ctx context.Context, markDown bool) {
	alive := map[string]bool{}
	for _, mem := range m.members.Members() {
		alive[mem.NodeID] = true
	}
	var nodes []*minkepb.Node
	_ = m.raft.View(func(tx raftstore.ReadTx) error { nodes = tx.Nodes(); return nil })
	for _, n := range nodes {
		id := n.GetMeta().GetId()
		switch {
		case alive[id] || id == m.nodeID:
			m.setNodeState(ctx, id, minkepb.NodeStatus_READY, "alive in gossip")
		case m.disp.HasSession(id):
			// READY through its session (see dispatcher liveness).
		case markDown:
			m.setNodeState(ctx, id, minkepb.NodeStatus_DOWN, "not in gossip")
		}
	}
}

// inGossip reports whether a node is alive in gossip now.
func (m *Manager) inGossip(nodeID string) bool {
	for _, mem := range m.members.Members() {
		if mem.NodeID == nodeID {
			return true
		}
	}
	return false
}

func (m *Manager) setNodeState(ctx context.Context, id string, state minkepb.NodeStatus_State, msg string) {
	err := m.raft.Update(ctx, func(tx *raftstore.WriteTx) error {
		n := tx.Node(id)
		if n == nil || !dispatcher.NodeStateChange(n, state, time.Now()) {
			return nil // unchanged, or held for a planned restart (restarts.go)
		}
		n = proto.Clone(n).(*minkepb.Node)
		if n.Status == nil {
			n.Status = &minkepb.NodeStatus{}
		}
		n.Status.State, n.Status.Message = state, msg
		n.Status.RestartDeadline = nil
		return tx.Update(n)
	})
	if err != nil {
		m.log.Warn("recording node state failed", "node_id", id, "state", state.String(), "err", err)
		return
	}
	m.log.Debug("node state", "node_id", id, "state", state.String())
}

// resolveImage maps a service image that names an image pushed to the
// cluster's registries to its pinned location in this manager's
// (REGISTRY/REPO@DIGEST), fetching it from another manager first if this one
// missed the copy, so every replica runs the same bytes. Anything else is
// pulled as given: images of other registries were pinned to a digest when
// the service was created or updated (see pinningControl).
func (m *Manager) resolveImage(image string) string {
	repo, digest, ok := m.builtinDigest(context.Background(), image)
	if !ok {
		return image
	}
	return m.regLis.Addr().String() + "/" + repo + "@" + digest
}

// inBuiltinRegistry reports whether image names an image in the cluster's
// registries.
func (m *Manager) inBuiltinRegistry(ctx context.Context, image string) bool {
	_, _, ok := m.builtinDigest(ctx, image)
	return ok
}

// builtinDigest looks image up in the cluster's registries. Only names
// without a registry host (which would otherwise mean Docker Hub) can name
// one; "docker.io/…" always means Docker Hub.
func (m *Manager) builtinDigest(ctx context.Context, image string) (repo, digest string, ok bool) {
	ref, err := name.ParseReference(image)
	if err != nil || ref.Context().RegistryStr() != name.DefaultRegistry ||
		strings.HasPrefix(image, "docker.io/") || strings.HasPrefix(image, "index.docker.io/") {
		return "", "", false
	}
	repo = strings.TrimPrefix(ref.Context().RepositoryStr(), "library/")
	digest, ok, err = m.registry.Resolve(repo, ref.Identifier())
	if err == nil && !ok && m.missCache.shouldTry(image) {
		if m.fetchFromPeers(ctx, repo, ref.Identifier()) {
			digest, ok, err = m.registry.Resolve(repo, ref.Identifier())
		} else {
			m.missCache.missed(image)
		}
	}
	if err != nil || !ok {
		return "", "", false
	}
	return repo, digest, true
}
