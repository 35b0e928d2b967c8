// Package registrytest serves the cluster's built-in registry the way a
// manager serves it — TLS with a manager certificate, every request
// authenticated by a client certificate from the cluster's CA and
// authorised by its role — for tests of the registry's clients. It makes
// its own root CA and issues identities of any role from it.
package registrytest

import (
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/registry"
)

// Server is a guarded registry on 127.0.0.1.
type Server struct {
	// Addr is the registry's host:port.
	Addr     string
	Registry *registry.Registry
	Root     *ca.RootCA
	// Manager is the identity the server presents.
	Manager *ca.Identity

	mu      sync.Mutex
	revoked map[string]bool
}

// Start serves a registry stored under dir until the test ends; logger
// may be nil. setup runs on the registry before it serves (OnTag).
func Start(t testing.TB, dir string, logger *slog.Logger, setup ...func(*registry.Registry)) *Server {
	t.Helper()
	root, err := ca.NewRootCA("registrytest", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range setup {
		fn(reg)
	}
	s := &Server{Registry: reg, Root: root, revoked: map[string]bool{}}
	s.Manager = s.Issue(t, "manager-1", ca.RoleManager)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// As the manager serves it (httptest's StartTLS would present its own
	// certificate to clients that send no server name).
	srv := &http.Server{Handler: reg.Guard(s.authenticate), TLSConfig: s.Manager.ServerTLS(false),
		ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(lis, "", "") }()
	t.Cleanup(func() { srv.Close(); <-done })
	s.Addr = lis.Addr().String()
	return s
}

// authenticate is the manager's check without the store: the chain must
// verify against Root and not be revoked.
func (s *Server) authenticate(chain []*x509.Certificate) (ca.Peer, error) {
	p, err := ca.Verify(chain, s.Manager.Roots(), time.Now())
	if err != nil {
		return p, fmt.Errorf("%w: %w", registry.ErrUnauthorized, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revoked[p.Serial] {
		return p, fmt.Errorf("%w: the certificate of %s (serial %s) was revoked", registry.ErrDenied, p.ID, p.Serial)
	}
	return p, nil
}

// Issue makes an in-memory identity named id with role, from Root.
func (s *Server) Issue(t testing.TB, id, role string) *ca.Identity {
	t.Helper()
	return IssueFrom(t, s.Root, id, role)
}

// IssueFrom makes an in-memory identity named id with role, signed by root
// (which it also trusts).
func IssueFrom(t testing.TB, root *ca.RootCA, id, role string) *ca.Identity {
	t.Helper()
	key, csr, err := ca.NewKeyAndCSR(id)
	if err != nil {
		t.Fatal(err)
	}
	is, err := root.Sign(csr, id, role, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out := ca.NewIdentity("")
	if err := out.Set(key, is.ChainPEM, root.CertPEM); err != nil {
		t.Fatal(err)
	}
	return out
}

// Revoke makes the server refuse id's current certificate.
func (s *Server) Revoke(id *ca.Identity) { s.RevokeSerial(id.Peer().Serial) }

// RevokeSerial makes the server refuse the certificate with serial.
func (s *Server) RevokeSerial(serial string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[serial] = true
}

// Transport is the registry transport of a client holding id.
func Transport(id *ca.Identity) http.RoundTripper { return registry.TransportFor(id) }
