package ca

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"
)

// RenewFunc asks the cluster to sign csrDER for this node and returns the
// new chain and the roots to trust.
type RenewFunc func(ctx context.Context, csrDER []byte) (chainPEM, rootsPEM []byte, err error)

// Renewer keeps an identity's certificate fresh: it renews at two thirds of
// the certificate's lifetime, or at once when kicked (the cluster's root
// changed), retrying failures with backoff. A new key is made each time.
type Renewer struct {
	id    *Identity
	renew RenewFunc
	kick  chan struct{}
	log   *slog.Logger
}

// NewRenewer returns a renewer; Run drives it.
func NewRenewer(id *Identity, renew RenewFunc, log *slog.Logger) *Renewer {
	return &Renewer{id: id, renew: renew, kick: make(chan struct{}, 1), log: log.With("component", "ca")}
}

// Kick asks for a renewal now (coalesced).
func (r *Renewer) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// RenewAt is when a certificate is due for renewal: two thirds into its
// validity.
func RenewAt(c *x509.Certificate) time.Time {
	start := c.NotBefore.Add(skew)
	if start.After(c.NotAfter) {
		start = c.NotBefore
	}
	return start.Add(c.NotAfter.Sub(start) * 2 / 3)
}

// Run renews until ctx ends.
func (r *Renewer) Run(ctx context.Context) {
	backoff := time.Second
	for {
		wait := time.Hour
		if l := r.id.Leaf(); l != nil {
			wait = time.Until(RenewAt(l))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.kick:
			t.Stop()
		case <-t.C:
		}
		if err := r.RenewNow(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("certificate renewal failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			r.Kick()
			continue
		}
		backoff = time.Second
		select { // kicks that came while renewing are answered
		case <-r.kick:
		default:
		}
	}
}

// RenewNow renews once.
func (r *Renewer) RenewNow(ctx context.Context) error {
	key, csr, err := NewKeyAndCSR(r.id.Peer().ID)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	chain, roots, err := r.renew(cctx, csr)
	if err != nil {
		return err
	}
	if err := r.id.Set(key, chain, roots); err != nil {
		return err
	}
	l := r.id.Leaf()
	r.log.Info("certificate renewed", "node_id", PeerOf(l).ID, "serial", PeerOf(l).Serial,
		"not_after", l.NotAfter.UTC().Format(time.RFC3339), "issuer", l.Issuer.CommonName)
	return nil
}
