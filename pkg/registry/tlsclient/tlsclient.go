// Package tlsclient is the client side of the cluster's registries: the
// HTTP transport that reaches them over mutual TLS and never in the clear.
// It is a leaf apart from pkg/registry, the server, so that the worker,
// which only pulls, does not link the server and its start-up work (the
// name-validation expressions compiled at init).
package tlsclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"github.com/minke-io/minke/pkg/ca"
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

// TransportFor is Transport for the holder of id, which presents id's
// current certificate and trusts id's current roots. When id gets a new
// certificate (renewal, CA rotation) the idle connections, authenticated
// with the old one, are closed, so that later requests present the new one:
// a certificate rotated away or revoked is refused on a kept-alive
// connection too.
func TransportFor(id *ca.Identity) http.RoundTripper {
	t := Transport(id.ClientTLS(ca.RoleManager)).(tlsOnly)
	id.OnChange(t.CloseIdleConnections)
	return t
}

type tlsOnly struct{ base *http.Transport }

// CloseIdleConnections closes the connections not in use (http.Client
// calls it too).
func (t tlsOnly) CloseIdleConnections() { t.base.CloseIdleConnections() }

func (t tlsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%w: refusing %s %s", ErrPlainHTTP, req.Method, req.URL.Redacted())
	}
	return t.base.RoundTrip(req)
}
