package registry

import (
	"crypto/tls"
	"net/http"

	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/registry/tlsclient"
)

// ErrPlainHTTP is returned by Transport for a request that would go to the
// cluster's registry without TLS (tlsclient.ErrPlainHTTP).
var ErrPlainHTTP = tlsclient.ErrPlainHTTP

// Transport is tlsclient.Transport: the http.RoundTripper of clients of the
// cluster's registries, TLS with cfg, never plain HTTP.
func Transport(cfg *tls.Config) http.RoundTripper { return tlsclient.Transport(cfg) }

// TransportFor is tlsclient.TransportFor: Transport for the holder of id,
// following its certificate renewals and CA rotations.
func TransportFor(id *ca.Identity) http.RoundTripper { return tlsclient.TransportFor(id) }
