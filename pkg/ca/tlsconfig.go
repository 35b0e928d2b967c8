package ca

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ErrPinMismatch: the server's CA is not the one the join token pins.
var ErrPinMismatch = errors.New("ca: the manager's CA does not match the join token")

// errNoCert is returned by handshakes before the node has a certificate.
var errNoCert = errors.New("ca: this node has no certificate yet (it has not joined)")

// presented is what this node shows in a handshake: its chain, then its
// roots, so that a joining node can find the root its token pins.
func (id *Identity) presented() (*tls.Certificate, error) {
	c := id.Certificate()
	if c == nil {
		return nil, errNoCert
	}
	out := *c
	out.Certificate = append([][]byte(nil), c.Certificate...)
	if certs, err := ParseCertsPEM(id.RootsPEM()); err == nil {
		for _, r := range certs {
			out.Certificate = append(out.Certificate, r.Raw)
		}
	}
	return &out, nil
}

// ServerTLS is the configuration of a gRPC server: it presents the current
// certificate and asks for, without requiring, a client certificate; the
// server's authorization layer verifies it per call (see Verify), so that a
// refusal comes back as an error the caller can read.
func (id *Identity) ServerTLS(requireClientCert bool) *tls.Config {
	auth := tls.RequestClientCert
	if requireClientCert {
		auth = tls.RequireAnyClientCert
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     auth,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.presented() },
	}
}

// MutualServerTLS is for servers that refuse at the handshake (Raft): the
// client's chain must verify against the current roots, name wantRole, and
// pass authorize (nil allows all).
func (id *Identity) MutualServerTLS(wantRole string, authorize func(Peer) error, onRefuse func(error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.presented() },
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			err := id.verifyRaw(raw, wantRole, authorize)
			if err != nil && onRefuse != nil {
				onRefuse(err)
			}
			return err
		},
	}
}

// ClientTLS is the configuration of a connection to a server that must
// hold a certificate of wantRole issued by the cluster; the current
// certificate is presented (if any).
func (id *Identity) ClientTLS(wantRole string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Go's host-name verification does not apply: the chain and role
		// are checked against the cluster's roots below.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c, err := id.presented(); err == nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return id.verifyRaw(raw, wantRole, nil)
		},
	}
}

func (id *Identity) verifyRaw(raw [][]byte, wantRole string, authorize func(Peer) error) error {
	chain, err := parseRaw(raw)
	if err != nil {
		return err
	}
	p, err := Verify(chain, id.Roots(), time.Now())
	if err != nil {
		return err
	}
	if wantRole != "" && p.Role != wantRole {
		return fmt.Errorf("%w: %q holds a %s certificate, want %s", ErrRole, p.ID, p.Role, wantRole)
	}
	if authorize != nil {
		return authorize(p)
	}
	return nil
}

// PinnedTLS is the configuration of a join: no client certificate, and the
// server must present a manager certificate that chains to the root whose
// SHA-256 is pin (from the join token) — checked before anything,
// including the token, is sent.
func PinnedTLS(pin []byte) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified against the pinned root below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			chain, err := parseRaw(raw)
			if err != nil {
				return err
			}
			var root *x509.Certificate
			for _, c := range chain[1:] {
				h := sha256.Sum256(c.Raw)
				if bytes.Equal(h[:], pin) {
					root = c
				}
			}
			if root == nil {
				return fmt.Errorf("%w: the token pins CA %x…, and the manager presented no certificate from it "+
					"(a man in the middle, another cluster, or a CA rotated since the token was made)", ErrPinMismatch, pin[:6])
			}
			pool := x509.NewCertPool()
			pool.AddCert(root)
			p, err := Verify(chain, pool, time.Now())
			if err != nil {
				return fmt.Errorf("%w: %w", ErrPinMismatch, err)
			}
			if p.Role != RoleManager {
				return fmt.Errorf("%w: the server is %q with a %s certificate, not a manager", ErrPinMismatch, p.ID, p.Role)
			}
			return nil
		},
	}
}

func parseRaw(raw [][]byte) ([]*x509.Certificate, error) {
	if len(raw) == 0 {
		return nil, ErrNoCertificate
	}
	out := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return nil, fmt.Errorf("%w: unparsable certificate: %w", ErrCertificate, err)
		}
		out = append(out, c)
	}
	return out, nil
}
