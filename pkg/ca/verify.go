package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of certificate checks.
var (
	// ErrNoCertificate: the peer presented no certificate.
	ErrNoCertificate = errors.New("ca: no certificate")
	// ErrCertificate: the certificate does not verify against the cluster's
	// roots (forged, expired, from another cluster).
	ErrCertificate = errors.New("ca: certificate refused")
	// ErrRole: the certificate's role may not do this.
	ErrRole = errors.New("ca: wrong role")
)

// Peer is who a verified certificate names.
type Peer struct {
	// ID is the node ID (or client name) in the subject's CommonName.
	ID       string
	Role     string
	Serial   string
	NotAfter time.Time
	// Chain is the verified chain as presented (leaf first), when known.
	Chain []*x509.Certificate
}

// PeerOf reads the identity fields of a certificate (no verification).
func PeerOf(c *x509.Certificate) Peer {
	p := Peer{ID: c.Subject.CommonName, Serial: c.SerialNumber.Text(16), NotAfter: c.NotAfter}
	if len(c.Subject.OrganizationalUnit) > 0 {
		p.Role = c.Subject.OrganizationalUnit[0]
	}
	return p
}

// Verify checks a presented chain (leaf first) against roots at now and
// returns whom it names. The error says why a chain is refused, in words an
// operator can act on.
func Verify(chain []*x509.Certificate, roots *x509.CertPool, now time.Time) (Peer, error) {
	if len(chain) == 0 {
		return Peer{}, ErrNoCertificate
	}
	leaf := chain[0]
	p := PeerOf(leaf)
	p.Chain = chain
	if roots == nil {
		return p, fmt.Errorf("%w: no cluster CA known yet to check the certificate of %q", ErrCertificate, p.ID)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err == nil {
		if p.ID == "" || (p.Role != RoleManager && p.Role != RoleWorker && p.Role != RoleClient) {
			return p, fmt.Errorf("%w: certificate names no node and role", ErrCertificate)
		}
		return p, nil
	}
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return p, fmt.Errorf("%w: the certificate of %q (serial %s) expired at %s or is not yet valid; "+
			"a node renews before expiry: one that was off for too long must join again", ErrCertificate, p.ID, p.Serial,
			leaf.NotAfter.UTC().Format(time.RFC3339))
	case errors.As(err, &ua):
		return p, fmt.Errorf("%w: the certificate of %q (serial %s) was not issued by this cluster's CA "+
			"(forged, or from another cluster, or from a CA rotated away)", ErrCertificate, p.ID, p.Serial)
	}
	return p, fmt.Errorf("%w: the certificate of %q: %w", ErrCertificate, p.ID, err)
}

type peerKey struct{}

// WithPeer records the verified caller in ctx (done by the server's
// authorization layer).
func WithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the verified caller recorded in ctx.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}
