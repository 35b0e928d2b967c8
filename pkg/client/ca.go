package client

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
)

// CAStatus returns the cluster CA's fingerprint and rotation progress.
func (c *Client) CAStatus(ctx context.Context) (*minkepb.CAStatus, error) {
	resp, err := c.ctl.GetCluster(ctx, &minkepb.GetClusterRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetCaStatus(), nil
}

// RotateCA starts a CA rotation.
func (c *Client) RotateCA(ctx context.Context) (*minkepb.CAStatus, error) {
	resp, err := c.ctl.RotateCA(ctx, &minkepb.RotateCARequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetCaStatus(), nil
}

// WriteClientCert makes a key here, has the manager sign a client
// certificate for it, and writes ca.pem, cert.pem and key.pem (0600) into
// dir. The key never leaves this machine.
func (c *Client) WriteClientCert(ctx context.Context, dir string) (ca.Peer, error) {
	key, csr, err := ca.NewKeyAndCSR("client")
	if err != nil {
		return ca.Peer{}, err
	}
	resp, err := c.ctl.IssueClientCertificate(ctx, &minkepb.IssueClientCertificateRequest{Csr: csr})
	if err != nil {
		return ca.Peer{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ca.Peer{}, fmt.Errorf("client: %w", err)
	}
	id := ca.NewIdentity(filepath.Clean(dir))
	if err := id.Set(key, resp.GetCertificate(), resp.GetCaCerts()); err != nil {
		return ca.Peer{}, err
	}
	return id.Peer(), nil
}
