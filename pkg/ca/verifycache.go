package ca

import (
	"crypto/x509"
	"slices"
	"sync"
	"time"
)

// VerifyCache remembers chains that Verify accepted, so that the calls on
// one TLS connection — which all present the same parsed certificates —
// check the signatures once, not once per call: at 5,000 nodes reporting
// task status, the per-call ECDSA checks were a sixth of a manager's CPU.
// A remembered chain is accepted again only with the same roots (the
// pool's pointer: Identity replaces its pool when the roots change) and
// while every certificate in it is within its validity period; anything
// else is verified afresh. Revocation is not Verify's business and is
// checked by the caller on every call, as before. The zero value is ready.
type VerifyCache struct {
	mu sync.Mutex
	ok map[*x509.Certificate]verified // by leaf
}

type verified struct {
	chain     []*x509.Certificate
	roots     *x509.CertPool
	notBefore time.Time // the latest NotBefore in the chain
	notAfter  time.Time // the earliest NotAfter in the chain
	peer      Peer
}

// maxVerified bounds the cache; it is emptied when full (entries of
// closed connections are never looked up again).
const maxVerified = 65536

// Verify is Verify(chain, roots, now), answered from the cache when the
// same chain passed with the same roots and now is inside its validity.
func (c *VerifyCache) Verify(chain []*x509.Certificate, roots *x509.CertPool, now time.Time) (Peer, error) {
	if len(chain) == 0 || roots == nil {
		return Verify(chain, roots, now)
	}
	c.mu.Lock()
	v, hit := c.ok[chain[0]]
	c.mu.Unlock()
	if hit && v.roots == roots && slices.Equal(v.chain, chain) && !now.Before(v.notBefore) && !now.After(v.notAfter) {
		return v.peer, nil
	}
	p, err := Verify(chain, roots, now)
	if err != nil {
		return p, err
	}
	v = verified{chain: slices.Clone(chain), roots: roots, notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter, peer: p}
	for _, cert := range chain[1:] {
		v.notBefore = latest(v.notBefore, cert.NotBefore)
		if cert.NotAfter.Before(v.notAfter) {
			v.notAfter = cert.NotAfter
		}
	}
	c.mu.Lock()
	if c.ok == nil || len(c.ok) >= maxVerified {
		c.ok = map[*x509.Certificate]verified{}
	}
	c.ok[chain[0]] = v
	c.mu.Unlock()
	return p, nil
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
