package registry

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"

	"github.com/minke-io/minke/pkg/ca"
)

// The cluster's registry is reached only over TLS, and every request
// carries a client certificate issued by the cluster: nodes present the
// certificate they got at join, `swarmctl image push` a short-lived client
// certificate (or the one in --tls-dir). Guard decides per request, rather
// than the TLS handshake, so that a refusal comes back as an OCI error body
// that says why, and is logged with whom it refused.

// Authenticator establishes who presented chain (the TLS client's
// certificates as presented, leaf first; never empty). It returns the
// verified caller, whose Role is what the caller may act as, or an error
// wrapping ErrUnauthorized (a certificate the cluster did not issue, or
// expired) or ErrDenied (revoked, or a node removed from the cluster).
type Authenticator func(chain []*x509.Certificate) (ca.Peer, error)

// Guard serves r over TLS to the callers auth accepts: reads (GET, HEAD)
// for manager, worker and client certificates, writes (POST, PUT, PATCH,
// DELETE) for manager and client certificates only, so a worker can pull
// but not push. A refused request is answered with the OCI error body
// (UNAUTHORIZED 401, or DENIED 403) and logged with the caller's ID and
// role and what it tried.
func (r *Registry) Guard(auth Authenticator) http.Handler {
	return &guard{r: r, auth: auth}
}

type guard struct {
	r    *Registry
	auth Authenticator
}

func (g *guard) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var (
		p   ca.Peer
		err error
	)
	switch {
	case req.TLS == nil:
		err = fmt.Errorf("%w: the cluster's registry is served only over TLS, with a certificate issued by the cluster", ErrUnauthorized)
	case len(req.TLS.PeerCertificates) == 0:
		err = fmt.Errorf("%w: no client certificate: the cluster's registry needs one issued by the cluster "+
			"(nodes get theirs when they join; 'swarmctl image push' on a manager gets one through the unix socket, "+
			"or use --tls-dir with the files of 'swarmctl cluster client-cert')", ErrUnauthorized)
	default:
		p, err = g.auth(req.TLS.PeerCertificates)
		if err == nil {
			err = mayDo(p, req.Method)
		}
	}
	if err != nil {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		g.r.log.Warn("refused registry request", "node_id", p.ID, "role", p.Role, "method", req.Method,
			"path", req.URL.Path, "remote", req.RemoteAddr, "reason", strings.TrimPrefix(err.Error(), "registry: "))
		writeError(w, req, err)
		return
	}
	if p.Role != ca.RoleManager {
		// Only managers copy images between themselves; anyone else's
		// push is replicated.
		req.Header.Del(ReplicaHeader)
	}
	g.r.ServeHTTP(w, req)
}

// mayDo applies the role policy: every role reads, workers do not write.
func mayDo(p ca.Peer, method string) error {
	read := method == http.MethodGet || method == http.MethodHead
	switch p.Role {
	case ca.RoleManager, ca.RoleClient:
		return nil
	case ca.RoleWorker:
		if read {
			return nil
		}
		return fmt.Errorf("%w: %s holds a worker certificate: it may pull from the cluster's registry (GET, HEAD), not %s; "+
			"push with 'swarmctl image push' on a manager, or with a client certificate", ErrDenied, p.ID, method)
	}
	return fmt.Errorf("%w: the certificate of %s has role %q; want %s, %s or %s", ErrDenied, p.ID, p.Role,
		ca.RoleManager, ca.RoleWorker, ca.RoleClient)
}
