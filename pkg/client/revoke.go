package client

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
)

// RevokeClientCert revokes the client certificate in path: a cert.pem, or
// a directory holding one (as 'swarmctl cluster client-cert --out DIR'
// wrote it). It returns the certificate's serial and expiry.
func (c *Client) RevokeClientCert(ctx context.Context, path string) (serial string, notAfter time.Time, err error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, ca.CertFile)
	}
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("client: the certificate to revoke: %w", err)
	}
	resp, err := c.ctl.RevokeClientCertificate(ctx, &minkepb.RevokeClientCertificateRequest{Certificate: pemBytes})
	if err != nil {
		return "", time.Time{}, err
	}
	return resp.GetSerial(), resp.GetNotAfter().AsTime(), nil
}
