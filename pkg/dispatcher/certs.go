package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
)

func (d *Dispatcher) now() time.Time {
	if d.cfg.Now != nil {
		return d.cfg.Now()
	}
	return time.Now()
}

func roleName(r minkepb.NodeRole) string {
	if r == minkepb.NodeRole_MANAGER {
		return ca.RoleManager
	}
	return ca.RoleWorker
}

// issue signs csr for node n in role r with the cluster's root, and records
// the certificate in n (the caller stores n).
func issue(tx raftstore.ReadTx, n *minkepb.Node, r minkepb.NodeRole, csr []byte, now time.Time) (chain, roots []byte, err error) {
	c := tx.Cluster()
	root, err := ca.ClusterRoot(c)
	if err != nil {
		return nil, nil, status.Error(codes.FailedPrecondition, "the cluster has no CA yet; retry once it is initialised")
	}
	is, err := root.Sign(csr, n.GetMeta().GetId(), roleName(r), ca.Lifetime(c), now)
	if errors.Is(err, ca.ErrCSR) {
		return nil, nil, status.Error(codes.InvalidArgument, strings.TrimPrefix(err.Error(), "ca: "))
	}
	if err != nil {
		return nil, nil, err
	}
	n.Certificate = ca.RecordIssued(c, is)
	return is.ChainPEM, ca.TrustBundle(c), nil
}

// IssueCertificate signs csr for the node nodeID in the role its record
// holds and records it (leader only). A manager renews its own certificate
// this way when it leads; other nodes call RenewCertificate.
func (d *Dispatcher) IssueCertificate(ctx context.Context, nodeID string, csr []byte) (*minkepb.RenewCertificateResponse, error) {
	resp := &minkepb.RenewCertificateResponse{}
	err := d.cfg.Store.Update(ctx, func(tx *raftstore.WriteTx) error {
		n := tx.Node(nodeID)
		if n == nil {
			return nodeNotFound(nodeID)
		}
		n = proto.Clone(n).(*minkepb.Node)
		var err error
		if resp.Certificate, resp.CaCerts, err = issue(tx.ReadTx, n, n.GetRole(), csr, d.now()); err != nil {
			return err
		}
		return tx.Update(n)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	d.log.Info("certificate issued", "node_id", nodeID)
	return resp, nil
}

// RenewCertificate signs a new certificate for the calling node.
func (d *Dispatcher) RenewCertificate(ctx context.Context, req *minkepb.RenewCertificateRequest) (*minkepb.RenewCertificateResponse, error) {
	nodeID, err := d.authenticateNode(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.GetCsr()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "renew: csr is required")
	}
	return d.IssueCertificate(ctx, nodeID, req.GetCsr())
}

// stillTrusted reports whether the session's certificate still chains to
// a root the cluster trusts (a CA rotation may have retired its root). Its
// expiry does not end a session: the session was authenticated when it
// began, and the node renews its certificate on other connections.
func stillTrusted(ctx context.Context, c *minkepb.Cluster) error {
	p, ok := ca.PeerFrom(ctx)
	if !ok || len(p.Chain) == 0 {
		return nil
	}
	pool, err := ca.TrustPool(c)
	if err != nil {
		return nil
	}
	leaf := p.Chain[0]
	at := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
	if _, err := ca.Verify(p.Chain, pool, at); err != nil {
		return fmt.Errorf("reconnect with a current certificate: %w", err)
	}
	return nil
}
