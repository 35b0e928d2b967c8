package agent

import (
	"context"
	"fmt"

	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
)

// renewCert is the renewer's RenewFunc: the manager signs a new
// certificate for the node its current certificate names.
func (a *Agent) renewCert(ctx context.Context, csr []byte) ([]byte, []byte, error) {
	resp, err := a.dispatcher().RenewCertificate(ctx, &minkepb.RenewCertificateRequest{Csr: csr})
	if err != nil {
		return nil, nil, fmt.Errorf("renewing the node certificate: %s", status.Convert(err).Message())
	}
	return resp.GetCertificate(), resp.GetCaCerts(), nil
}

// checkCA follows the cluster's roots, and renews at once when the
// cluster's root is not the one that signed this node's certificate (a CA
// rotation).
func (a *Agent) checkCA(msg *minkepb.SessionMessage) {
	if len(msg.GetCaCerts()) > 0 {
		if err := a.id.SetRoots(msg.GetCaCerts()); err != nil {
			a.log.Warn("updating the trusted roots", "err", err)
		}
	}
	if a.renewer != nil && len(msg.GetCaCerts()) > 0 && !ca.SignedBy(a.id.Leaf(), msg.GetCaCerts()) {
		a.log.Info("the cluster has a new root CA: renewing the node certificate", "ca_fingerprint", msg.GetCaFingerprint())
		a.renewer.Kick()
	}
}

// redial makes new calls use a connection that presents the current
// certificate; the running session stays on the old one until it ends.
func (a *Agent) redial() {
	a.mu.Lock()
	addr := a.addr
	a.mu.Unlock()
	conn, err := a.dial(addr)
	if err != nil {
		a.log.Warn("cannot dial manager", "addr", addr, "err", err)
		return
	}
	a.mu.Lock()
	a.retired = append(a.retired, a.conn)
	a.conn, a.client = conn, minkepb.NewDispatcherClient(conn)
	a.mu.Unlock()
}

// closeRetired closes connections made with older certificates (between
// sessions).
func (a *Agent) closeRetired() {
	a.mu.Lock()
	old := a.retired
	a.retired = nil
	a.mu.Unlock()
	for _, c := range old {
		_ = c.Close()
	}
}
