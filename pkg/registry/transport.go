package registry

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
)

// ErrPlainHTTP is returned by Transport for a request that would go to the
// cluster's registry without TLS.
var ErrPlainHTTP = errors.New("registry: the cluster's registry is reached only over TLS")

// Transport is the http.RoundTripper of clients of the cluster's
// registries: TLS with cfg, which should be the caller's
// ca.Identity.ClientTLS(ca.RoleManager) (it presents the caller's current
// certificate and accepts only a manager certificate from the cluster's
// current roots, so renewals and CA rotations need no new transport), or a
// client directory's. It never speaks plain HTTP: go-containerregistry
// falls back to http:// for loopback and private addresses when https
// fails, and such a request fails here instead of going out in the clear.
func Transport(cfg *tls.Config) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	return tlsOnly{base: t}
}

type tlsOnly struct{ base http.RoundTripper }

func (t tlsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%w: refusing %s %s", ErrPlainHTTP, req.Method, req.URL.Redacted())
	}
	return t.base.RoundTrip(req)
}
