package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// ErrNoCA: the cluster object holds no root CA: its data was written by a
// minke from before cluster certificates, which has no in-place upgrade.
var ErrNoCA = errors.New("ca: the cluster has no root CA: its data dir was created by a minke without cluster certificates, " +
	"which cannot be upgraded in place; start this manager with an empty --data-dir (for the demo: make clean)")

// ErrRotating: a CA rotation is already running.
var ErrRotating = errors.New("ca: a CA rotation is already running")

// StoredRoot is r as the Cluster object keeps it.
func StoredRoot(r *RootCA) *minkepb.RootCA {
	return &minkepb.RootCA{Cert: r.CertPEM, Key: r.KeyPEM, CrossSigned: r.CrossSigned}
}

// ClusterRoot is the cluster's current root CA, able to sign.
func ClusterRoot(c *minkepb.Cluster) (*RootCA, error) {
	rc := c.GetRootCa()
	if len(rc.GetCert()) == 0 || len(rc.GetKey()) == 0 {
		return nil, ErrNoCA
	}
	return ParseRootCA(rc.GetCert(), rc.GetKey(), rc.GetCrossSigned())
}

// TrustBundle is the PEM roots a node must trust now: the current root and,
// during a rotation, the previous ones.
func TrustBundle(c *minkepb.Cluster) []byte {
	out := append([]byte(nil), c.GetRootCa().GetCert()...)
	for _, p := range c.GetPreviousCaCerts() {
		out = append(out, p...)
	}
	return out
}

// Lifetime is the cluster's certificate lifetime.
func Lifetime(c *minkepb.Cluster) time.Duration {
	if d := c.GetSpec().GetCertLifetime(); d != nil && d.AsDuration() >= MinCertLifetime {
		return d.AsDuration()
	}
	return DefaultCertLifetime
}

// ValidateLifetime checks a requested certificate lifetime.
func ValidateLifetime(d time.Duration) error {
	if d < MinCertLifetime {
		return fmt.Errorf("invalid certificate lifetime %s: want at least %s (the default is %s)", d, MinCertLifetime, DefaultCertLifetime)
	}
	return nil
}

// LifetimeProto is d for ClusterSpec.cert_lifetime (nil for the default).
func LifetimeProto(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// RecordIssued is what a node record keeps of a certificate it was issued.
func RecordIssued(c *minkepb.Cluster, is *Issued) *minkepb.NodeCertificate {
	return &minkepb.NodeCertificate{Serial: is.Serial, CaFingerprint: PEMFingerprint(c.GetRootCa().GetCert()),
		NotAfter: timestamppb.New(is.NotAfter)}
}

// Revoked reports whether serial was revoked.
func Revoked(c *minkepb.Cluster, serial string) bool {
	for _, r := range c.GetRevoked() {
		if r.GetSerial() == serial {
			return true
		}
	}
	return false
}

// Revoke adds a node's certificate to c's revoked list (c is modified), and
// drops entries that have expired anyway.
func Revoke(c *minkepb.Cluster, nc *minkepb.NodeCertificate, now time.Time) {
	kept := c.Revoked[:0]
	for _, r := range c.GetRevoked() {
		if r.GetNotAfter().AsTime().After(now) {
			kept = append(kept, r)
		}
	}
	c.Revoked = kept
	if nc.GetSerial() != "" && !Revoked(c, nc.GetSerial()) {
		c.Revoked = append(c.Revoked, &minkepb.RevokedCert{Serial: nc.GetSerial(), NotAfter: nc.GetNotAfter()})
	}
}

// Rotate returns c with a new root: the old one stays trusted, cross-signs
// the new one, and the join tokens are re-pinned to the new root (keeping
// their secrets).
func Rotate(c *minkepb.Cluster, now time.Time) (*minkepb.Cluster, error) {
	if len(c.GetPreviousCaCerts()) > 0 {
		return nil, ErrRotating
	}
	old, err := ClusterRoot(c)
	if err != nil {
		return nil, err
	}
	next, err := NewRootCA(c.GetMeta().GetId(), now)
	if err != nil {
		return nil, err
	}
	if next.CrossSigned, err = old.CrossSign(next); err != nil {
		return nil, err
	}
	c = proto.Clone(c).(*minkepb.Cluster)
	c.RootCa = StoredRoot(next)
	c.PreviousCaCerts = [][]byte{old.CertPEM}
	c.JoinTokens = &minkepb.JoinTokens{
		Worker:  RepinToken(RoleWorker, next.Cert.Raw, TokenSecret(c.GetJoinTokens().GetWorker())),
		Manager: RepinToken(RoleManager, next.Cert.Raw, TokenSecret(c.GetJoinTokens().GetManager())),
	}
	return c, nil
}

// Renewed counts the nodes holding a certificate from c's current root.
func Renewed(c *minkepb.Cluster, nodes []*minkepb.Node) int {
	fp := PEMFingerprint(c.GetRootCa().GetCert())
	n := 0
	for _, node := range nodes {
		if node.GetCertificate().GetCaFingerprint() == fp {
			n++
		}
	}
	return n
}

// FinishRotation returns c without the previous roots once every node holds
// a certificate from the current root, or nil when that is not (yet) so.
func FinishRotation(c *minkepb.Cluster, nodes []*minkepb.Node) *minkepb.Cluster {
	if len(c.GetPreviousCaCerts()) == 0 || Renewed(c, nodes) < len(nodes) {
		return nil
	}
	c = proto.Clone(c).(*minkepb.Cluster)
	c.PreviousCaCerts = nil
	c.RootCa.CrossSigned = nil
	return c
}

// Status summarises c's CA for users.
func Status(c *minkepb.Cluster, nodes []*minkepb.Node) *minkepb.CAStatus {
	st := &minkepb.CAStatus{Fingerprint: PEMFingerprint(c.GetRootCa().GetCert()), Rotating: len(c.GetPreviousCaCerts()) > 0,
		Nodes: uint32(len(nodes)), Renewed: uint32(Renewed(c, nodes)), CertLifetime: durationpb.New(Lifetime(c))}
	for _, p := range c.GetPreviousCaCerts() {
		st.PreviousFingerprints = append(st.PreviousFingerprints, PEMFingerprint(p))
	}
	return st
}

// Redact returns c without the root key, for showing to users.
func Redact(c *minkepb.Cluster) *minkepb.Cluster {
	if c.GetRootCa() == nil {
		return c
	}
	c = proto.Clone(c).(*minkepb.Cluster)
	c.RootCa.Key = nil
	return c
}

// TrustPool is TrustBundle as a certificate pool.
func TrustPool(c *minkepb.Cluster) (*x509.CertPool, error) {
	certs, err := ParseCertsPEM(TrustBundle(c))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, cert := range certs {
		pool.AddCert(cert)
	}
	return pool, nil
}

// NewClusterToken makes a new join token for role pinned to c's current
// root.
func NewClusterToken(c *minkepb.Cluster, role string) string {
	var der []byte
	if cert, err := ParseCertPEM(c.GetRootCa().GetCert()); err == nil {
		der = cert.Raw
	}
	return NewJoinToken(role, der)
}

// SignedBy reports whether leaf was signed by the first certificate in
// rootPEM (the cluster's current root).
func SignedBy(leaf *x509.Certificate, rootPEM []byte) bool {
	root, err := ParseCertPEM(rootPEM)
	return err == nil && leaf != nil && leaf.CheckSignatureFrom(root) == nil
}
