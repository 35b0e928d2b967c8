package ca

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

// TestVerifyCache: a chain that passed is accepted again without a new
// check only with the same roots and inside its validity; refusals are
// never remembered.
func TestVerifyCache(t *testing.T) {
	r, other := newRoot(t), newRoot(t)
	pool := x509.NewCertPool()
	pool.AddCert(r.Cert)
	otherPool := x509.NewCertPool()
	otherPool.AddCert(other.Cert)
	now := time.Now()
	chain := chainOf(t, issueIdentity(t, r, "node-1", RoleWorker, time.Hour, now))
	var c VerifyCache
	p, err := c.Verify(chain, pool, now)
	if err != nil || p.ID != "node-1" || p.Role != RoleWorker {
		t.Fatalf("first Verify = %+v, %v", p, err)
	}
	if p, err := c.Verify(chain, pool, now.Add(time.Minute)); err != nil || p.ID != "node-1" {
		t.Fatalf("cached Verify = %+v, %v", p, err)
	}
	if len(c.ok) != 1 {
		t.Fatalf("%d chains remembered, want 1", len(c.ok))
	}
	// Other roots (a rotation that dropped the issuing root): checked
	// afresh, and refused.
	if _, err := c.Verify(chain, otherPool, now); !errors.Is(err, ErrCertificate) {
		t.Fatalf("Verify with other roots = %v, want a refusal", err)
	}
	// Past its expiry the remembered chain is checked again, and refused.
	if _, err := c.Verify(chain, pool, now.Add(2*time.Hour)); !errors.Is(err, ErrCertificate) {
		t.Fatalf("Verify after expiry = %v, want a refusal", err)
	}
	// A forged chain with the same subject is never taken for the real one.
	fake := chainOf(t, forged(t, "node-1", RoleWorker))
	if _, err := c.Verify(fake, pool, now); !errors.Is(err, ErrCertificate) {
		t.Fatalf("forged chain = %v, want a refusal", err)
	}
	if _, err := c.Verify(nil, pool, now); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("no chain = %v, want ErrNoCertificate", err)
	}
}
