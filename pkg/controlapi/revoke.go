package controlapi

import (
	"context"
	"crypto/x509"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
)

// RevokeClientCertificate puts a client certificate of this cluster on the
// cluster's revocation list, where every manager checks it (the Control API
// on TCP, the built-in registry). It stays there until it would have
// expired. The certificate must verify against the cluster's roots and
// name the client role: a node's is revoked by removing the node.
func (s *Server) RevokeClientCertificate(ctx context.Context, req *minkepb.RevokeClientCertificateRequest) (*minkepb.RevokeClientCertificateResponse, error) {
	chain, err := ca.ParseCertsPEM(req.GetCertificate())
	if err != nil || len(chain) == 0 {
		return nil, invalid("certificate: want the PEM client certificate (cert.pem of 'swarmctl cluster client-cert'), got %d bytes that are not one",
			len(req.GetCertificate()))
	}
	leaf := chain[0]
	p := ca.PeerOf(leaf)
	if p.Role != ca.RoleClient {
		return nil, invalid("certificate: %s has role %q, want %q: a node's certificate is revoked by removing the node ('swarmctl node rm')",
			p.ID, p.Role, ca.RoleClient)
	}
	now := time.Now()
	err = s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		c := tx.Cluster()
		if c == nil {
			return status.Error(codes.Unavailable, "cluster is not initialised yet")
		}
		if _, err := ca.Verify(chain, rootPool(c), now); err != nil {
			return status.Errorf(codes.FailedPrecondition, "not revoked: %v (a certificate this cluster does not accept needs no revocation)", err)
		}
		if ca.Revoked(c, p.Serial) {
			return nil
		}
		c = proto.Clone(c).(*minkepb.Cluster)
		ca.Revoke(c, &minkepb.NodeCertificate{Serial: p.Serial, NotAfter: timestamppb.New(leaf.NotAfter)}, now)
		return tx.Update(c)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("client certificate revoked", "client", p.ID, "serial", p.Serial, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	return &minkepb.RevokeClientCertificateResponse{Serial: p.Serial, NotAfter: timestamppb.New(leaf.NotAfter)}, nil
}

// rootPool is the cluster's trusted roots (the current one, and the
// previous during a rotation).
func rootPool(c *minkepb.Cluster) *x509.CertPool {
	pool := x509.NewCertPool()
	if certs, err := ca.ParseCertsPEM(ca.TrustBundle(c)); err == nil {
		for _, r := range certs {
			pool.AddCert(r)
		}
	}
	return pool
}

// RevokeClientCertificate is a write: the leader applies it.
func (f *Forwarder) RevokeClientCertificate(ctx context.Context, r *minkepb.RevokeClientCertificateRequest) (*minkepb.RevokeClientCertificateResponse, error) {
	return unary(f, ctx, false, r, f.local.RevokeClientCertificate, minkepb.ControlClient.RevokeClientCertificate)
}
