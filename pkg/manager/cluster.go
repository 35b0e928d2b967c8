package manager

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/nodeinfo"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/dispatcher"
	"github.com/minke-io/minke/pkg/raftstore"
)

// bootstrap creates the cluster object on a new cluster and records this
// manager as a node; on restart it refreshes the node's description.
func (m *Manager) bootstrap(ctx context.Context) error {
	desc := Describe(m.cfg.Hostname)
	return m.raft.Update(ctx, func(tx *raftstore.WriteTx) error {
		if tx.Cluster() == nil {
			if m.newRoot == nil {
				return errors.New("manager: no root CA made for the new cluster")
			}
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return fmt.Errorf("manager: gossip key: %w", err)
			}
			if err := tx.Create(&minkepb.Cluster{
				Meta:       &minkepb.Meta{Id: m.clusterID},
				Spec:       &minkepb.ClusterSpec{Name: "default", CertLifetime: ca.LifetimeProto(m.cfg.CertLifetime)},
				JoinTokens: newTokens(m.newRoot),
				GossipKey:  key,
				RootCa:     ca.StoredRoot(m.newRoot),
			}); err != nil {
				return err
			}
		}
		host, _, _ := splitHostPort(m.cfg.ListenAddr)
		if n := tx.Node(m.nodeID); n != nil {
			n = proto.Clone(n).(*minkepb.Node)
			desc.Worker = n.GetDescription().GetWorker() // the worker role says so itself
			n.Description = desc
			n.Status = &minkepb.NodeStatus{State: minkepb.NodeStatus_READY, Addr: host}
			n.SecretHash = dispatcher.HashSecret(m.secret)
			if m.selfCert != nil && n.GetCertificate().GetCaFingerprint() != m.selfCert.GetCaFingerprint() {
				n.Certificate = m.selfCert
			}
			return tx.Update(n)
		}
		return tx.Create(&minkepb.Node{
			Meta:        &minkepb.Meta{Id: m.nodeID},
			Spec:        &minkepb.NodeSpec{Availability: minkepb.NodeSpec_ACTIVE, DesiredRole: minkepb.NodeRole_MANAGER},
			Description: desc,
			Role:        minkepb.NodeRole_MANAGER,
			SecretHash:  dispatcher.HashSecret(m.secret),
			Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_READY, Addr: host},
			Certificate: m.selfCert,
		})
	})
}

// Describe reports this machine: hostname (or the override), platform, and
// all its CPUs and memory as the node's resources.
func Describe(hostname string) *minkepb.NodeDescription { return nodeinfo.Describe(hostname) }

// caFingerprint is the current root's fingerprint, for logs.
func (m *Manager) caFingerprint() string {
	var fp string
	_ = m.raft.View(func(tx raftstore.ReadTx) error {
		fp = ca.PEMFingerprint(tx.Cluster().GetRootCa().GetCert())
		return nil
	})
	return fp
}
