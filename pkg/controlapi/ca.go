package controlapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
)

// IssueClientCertificate signs a client certificate (role "client") for
// the key in the CSR; the Control API on --control-addr and the built-in
// registry accept it. The certificate lives the cluster's certificate
// lifetime, or less if the request asks. The manager's TCP listeners
// refuse this call: it is for the unix socket.
func (s *Server) IssueClientCertificate(_ context.Context, req *minkepb.IssueClientCertificateRequest) (*minkepb.IssueClientCertificateResponse, error) {
	if len(req.GetCsr()) == 0 {
		return nil, invalid("csr is required")
	}
	var c *minkepb.Cluster
	_ = s.store.View(func(tx raftstore.ReadTx) error { c = tx.Cluster(); return nil })
	root, err := ca.ClusterRoot(c)
	if err != nil {
		return nil, status.Error(codes.Unavailable, "the cluster has no CA yet")
	}
	lifetime := ca.Lifetime(c)
	if l := req.GetLifetime(); l != nil {
		if err := l.CheckValid(); err != nil || l.AsDuration() < ca.MinCertLifetime {
			return nil, invalid("lifetime %s is too short: want at least %s, at most the cluster's certificate lifetime %s",
				l.AsDuration(), ca.MinCertLifetime, lifetime)
		}
		lifetime = min(lifetime, l.AsDuration())
	}
	is, err := root.Sign(req.GetCsr(), "client-"+raftstore.NewID()[:12], ca.RoleClient, lifetime, time.Now())
	if errors.Is(err, ca.ErrCSR) {
		return nil, invalid("%s", strings.TrimPrefix(err.Error(), "ca: "))
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.log.Info("client certificate issued", "serial", is.Serial, "not_after", is.NotAfter.UTC().Format(time.RFC3339))
	return &minkepb.IssueClientCertificateResponse{Certificate: is.ChainPEM, CaCerts: ca.TrustBundle(c)}, nil
}

// RotateCA starts a CA rotation: a new root, cross-signed by the old one,
// which stays trusted until every node holds a certificate from the new
// root (the managers' sessions tell nodes to renew at once); the join
// tokens are re-pinned to the new root.
func (s *Server) RotateCA(ctx context.Context, _ *minkepb.RotateCARequest) (*minkepb.RotateCAResponse, error) {
	var st *minkepb.CAStatus
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		c := tx.Cluster()
		if c == nil {
			return status.Error(codes.Unavailable, "cluster is not initialised yet")
		}
		next, err := ca.Rotate(c, time.Now())
		if errors.Is(err, ca.ErrRotating) {
			cur := ca.Status(c, tx.Nodes())
			return status.Errorf(codes.FailedPrecondition, "a CA rotation is already running: %d of %d nodes hold a certificate from the new root; "+
				"it ends when every node has renewed (remove nodes that are gone for good with 'swarmctl node rm')", cur.GetRenewed(), cur.GetNodes())
		}
		if err != nil {
			return err
		}
		st = ca.Status(next, tx.Nodes())
		return tx.Update(next)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("CA rotation started", "fingerprint", st.GetFingerprint(), "previous", st.GetPreviousFingerprints())
	return &minkepb.RotateCAResponse{CaStatus: st}, nil
}

// caStatus fills the CA part of GetCluster's answer.
func caStatus(tx raftstore.ReadTx) *minkepb.CAStatus {
	return ca.Status(tx.Cluster(), tx.Nodes())
}

// IssueClientCertificate is answered locally: every manager holds the CA.
func (f *Forwarder) IssueClientCertificate(ctx context.Context, r *minkepb.IssueClientCertificateRequest) (*minkepb.IssueClientCertificateResponse, error) {
	return f.local.IssueClientCertificate(ctx, r)
}

func (f *Forwarder) RotateCA(ctx context.Context, r *minkepb.RotateCARequest) (*minkepb.RotateCAResponse, error) {
	return unary(f, ctx, false, r, f.local.RotateCA, minkepb.ControlClient.RotateCA)
}
