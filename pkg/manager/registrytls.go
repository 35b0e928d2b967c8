package manager

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/registry"
)

// The built-in registry (--registry-addr) is served like every other TCP
// listener of a manager: TLS with this manager's renewing certificate, and
// every request authenticated by a certificate from the cluster's CA (see
// registry.Guard for what each role may do). Workers pull with their node
// certificate, managers copy images to each other with theirs, and
// `swarmctl image push` presents a client certificate.

// newRegistryServer is the registry's HTTPS server.
func (m *Manager) newRegistryServer() *http.Server {
	return &http.Server{
		Handler:           m.registry.Guard(m.authenticateRegistry),
		TLSConfig:         m.id.ServerTLS(false), // the guard answers a missing certificate with a readable error
		ReadHeaderTimeout: 10 * time.Second,
		// Handshake failures (a plain-HTTP client, a client that refuses
		// this manager's certificate) are logged by net/http.
		ErrorLog: slog.NewLogLogger(m.cfg.Logger.With("component", "registry").Handler(), slog.LevelWarn),
	}
}

// authenticateRegistry is the registry's Authenticator: the chain must
// verify against the cluster's current roots and not be revoked; a node's
// certificate must belong to a node still in the cluster. A manager
// certificate of a node that is a worker now (demoted) acts as a worker's.
// A manager certificate with no node record yet is accepted, as Raft
// accepts it: a manager that just joined copies images before this
// manager's store has caught up.
func (m *Manager) authenticateRegistry(chain []*x509.Certificate) (ca.Peer, error) {
	p, err := ca.Verify(chain, m.id.Roots(), time.Now())
	if err != nil {
		return p, fmt.Errorf("%w: %s", registry.ErrUnauthorized, strings.TrimPrefix(err.Error(), "ca: "))
	}
	var (
		revoked bool
		node    *minkepb.Node
	)
	_ = m.raft.View(func(tx raftstore.ReadTx) error {
		revoked, node = ca.Revoked(tx.Cluster(), p.Serial), tx.Node(p.ID)
		return nil
	})
	switch {
	case revoked:
		return p, fmt.Errorf("%w: %s", registry.ErrDenied, revokedReason(p))
	case p.Role == ca.RoleWorker && node == nil:
		return p, fmt.Errorf("%w: node %s was removed from the cluster: its certificate is no longer accepted", registry.ErrDenied, p.ID)
	case p.Role == ca.RoleManager && node != nil && node.GetRole() != minkepb.NodeRole_MANAGER:
		p.Role = ca.RoleWorker
	}
	return p, nil
}

// registryTransport is how this manager reaches the other managers'
// registries: TLS with its own certificate, accepting only manager
// certificates from the cluster's roots. One transport is shared, so
// connections are reused across copies.
func (m *Manager) registryTransport() http.RoundTripper {
	m.regTransportOnce.Do(func() { m.regTransport = registry.TransportFor(m.id) })
	return m.regTransport
}

// registryClient holds the transport (see registryTransport).
type registryClient struct {
	regTransportOnce sync.Once
	regTransport     http.RoundTripper
}

// revokedReason says why p's certificate is on the revocation list.
func revokedReason(p ca.Peer) string {
	if p.Role == ca.RoleClient {
		return fmt.Sprintf("the client certificate %s (serial %s) was revoked ('swarmctl cluster revoke-client-cert'): "+
			"make a new one with 'swarmctl cluster client-cert' on a manager", p.ID, p.Serial)
	}
	return fmt.Sprintf("the certificate of %s (serial %s) was revoked: the node was removed from the cluster", p.ID, p.Serial)
}
