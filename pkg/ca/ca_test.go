package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func newRoot(t *testing.T) *RootCA {
	t.Helper()
	r, err := NewRootCA("cluster-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// issueIdentity makes an in-memory identity for subject/role signed by r.
func issueIdentity(t *testing.T, r *RootCA, subject, role string, lifetime time.Duration, now time.Time, roots ...*RootCA) *Identity {
	t.Helper()
	key, csr, err := NewKeyAndCSR(subject)
	if err != nil {
		t.Fatal(err)
	}
	is, err := r.Sign(csr, subject, role, lifetime, now)
	if err != nil {
		t.Fatal(err)
	}
	var bundle []byte
	if len(roots) == 0 {
		roots = []*RootCA{r}
	}
	for _, x := range roots {
		bundle = append(bundle, x.CertPEM...)
	}
	id := NewIdentity("")
	if err := id.Set(key, is.ChainPEM, bundle); err != nil {
		t.Fatal(err)
	}
	return id
}

// forged is a self-signed certificate with the same subject as a real one.
func forged(t *testing.T, subject, role string) *Identity {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: subject, OrganizationalUnit: []string{role}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	id := NewIdentity("")
	if err := id.Set(key, encodePEM("CERTIFICATE", der), encodePEM("CERTIFICATE", der)); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestVerify(t *testing.T) {
	r, other := newRoot(t), newRoot(t)
	pool := x509.NewCertPool()
	pool.AddCert(r.Cert)
	good := issueIdentity(t, r, "node-1", RoleWorker, time.Hour, time.Now())
	cases := []struct {
		name string
		id   *Identity
		err  string
	}{
		{"issued by the cluster", good, ""},
		{"forged: self-signed, same name", forged(t, "node-1", RoleManager), "was not issued by this cluster's CA"},
		{"another cluster", issueIdentity(t, other, "node-1", RoleWorker, time.Hour, time.Now()), "was not issued by this cluster's CA"},
		{"expired", issueIdentity(t, r, "node-1", RoleWorker, 10*time.Second, time.Now().Add(-time.Hour)), "expired at"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Verify(chainOf(t, c.id), pool, time.Now())
			if c.err == "" {
				if err != nil || p.ID != "node-1" || p.Role != RoleWorker {
					t.Fatalf("Verify = %+v, %v", p, err)
				}
				return
			}
			if !errors.Is(err, ErrCertificate) || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("Verify = %v, want an error containing %q", err, c.err)
			}
		})
	}
}

func chainOf(t *testing.T, id *Identity) []*x509.Certificate {
	t.Helper()
	chain, err := parseRaw(id.Certificate().Certificate)
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

// handshake runs a TLS handshake over loopback between a server and a
// client configuration and returns the client's error.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, server)
		_ = tc.Handshake() // a refusal sends the client an alert
		tc.Close()
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), client)
	if err == nil {
		// TLS 1.3: the server's verdict on the client arrives with the
		// first read.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
		if errors.Is(err, io.EOF) {
			err = nil // the server accepted, then closed
		}
		c.Close()
	}
	<-done
	return err
}

// A joining node checks the manager against the CA its token pins before
// it sends anything: a second cluster's manager (a man in the middle) is
// refused.
func TestPinnedJoin(t *testing.T) {
	r, mitm := newRoot(t), newRoot(t)
	mgr := issueIdentity(t, r, "m1", RoleManager, time.Hour, time.Now())
	evil := issueIdentity(t, mitm, "m1", RoleManager, time.Hour, time.Now())
	worker := issueIdentity(t, r, "w1", RoleWorker, time.Hour, time.Now())
	tok, err := ParseToken(NewJoinToken(RoleWorker, r.Cert.Raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, mgr.ServerTLS(false), PinnedTLS(tok.CAHash)); err != nil {
		t.Fatalf("the real manager: %v", err)
	}
	if err := handshake(t, evil.ServerTLS(false), PinnedTLS(tok.CAHash)); err == nil || !strings.Contains(err.Error(), "does not match the join token") {
		t.Fatalf("a man in the middle: %v, want a pin mismatch", err)
	}
	if err := handshake(t, worker.ServerTLS(false), PinnedTLS(tok.CAHash)); err == nil || !strings.Contains(err.Error(), "not a manager") {
		t.Fatalf("a worker posing as manager: %v", err)
	}
}

// Raft's handshake refuses clients without a cluster certificate of the
// right role.
func TestMutualTLS(t *testing.T) {
	r := newRoot(t)
	m1 := issueIdentity(t, r, "m1", RoleManager, time.Hour, time.Now())
	m2 := issueIdentity(t, r, "m2", RoleManager, time.Hour, time.Now())
	w := issueIdentity(t, r, "w1", RoleWorker, time.Hour, time.Now())
	expired := issueIdentity(t, r, "m3", RoleManager, 10*time.Second, time.Now().Add(-time.Hour))
	revoked := func(p Peer) error {
		if p.ID == "m2" {
			return errors.New("revoked")
		}
		return nil
	}
	cases := []struct {
		name   string
		client *Identity
		ok     bool
	}{
		{"manager", m1, true},
		{"worker", w, false},
		{"forged", forged(t, "m1", RoleManager), false},
		{"expired", expired, false},
		{"revoked", m2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := handshake(t, m1.MutualServerTLS(RoleManager, revoked, nil), c.client.ClientTLS(RoleManager))
			if (err == nil) != c.ok {
				t.Fatalf("handshake: %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// During a rotation a node that trusts only the old root accepts a manager
// whose certificate the new root signed (cross-signing), and after the
// rotation ends the old root's certificates are refused.
func TestRotation(t *testing.T) {
	old := newRoot(t)
	c := &minkepb.Cluster{Meta: &minkepb.Meta{Id: "c1"}, RootCa: StoredRoot(old),
		JoinTokens: &minkepb.JoinTokens{Worker: NewJoinToken(RoleWorker, old.Cert.Raw), Manager: NewJoinToken(RoleManager, old.Cert.Raw)}}
	rotated, err := Rotate(c, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Rotate(rotated, time.Now()); !errors.Is(err, ErrRotating) {
		t.Fatalf("second rotation: %v", err)
	}
	next, err := ClusterRoot(rotated)
	if err != nil {
		t.Fatal(err)
	}
	if TokensEqual(rotated.GetJoinTokens().GetWorker(), c.GetJoinTokens().GetWorker()) ||
		TokenSecret(rotated.GetJoinTokens().GetWorker()) != TokenSecret(c.GetJoinTokens().GetWorker()) {
		t.Fatal("tokens not re-pinned")
	}
	newMgr := issueIdentity(t, next, "m1", RoleManager, time.Hour, time.Now(), next, old)
	oldWorker := issueIdentity(t, old, "w1", RoleWorker, time.Hour, time.Now())
	if err := handshake(t, newMgr.ServerTLS(false), oldWorker.ClientTLS(RoleManager)); err != nil {
		t.Fatalf("old-root node to new-root manager: %v", err)
	}
	tok, _ := ParseToken(rotated.GetJoinTokens().GetWorker())
	if err := handshake(t, newMgr.ServerTLS(false), PinnedTLS(tok.CAHash)); err != nil {
		t.Fatalf("join with a re-pinned token: %v", err)
	}
	nodes := []*minkepb.Node{{Certificate: &minkepb.NodeCertificate{CaFingerprint: Fingerprint(old.Cert)}}}
	if FinishRotation(rotated, nodes) != nil {
		t.Fatal("rotation finished while a node holds an old certificate")
	}
	nodes[0].Certificate.CaFingerprint = Fingerprint(next.Cert)
	done := FinishRotation(rotated, nodes)
	if done == nil || len(done.GetPreviousCaCerts()) != 0 || len(done.GetRootCa().GetCrossSigned()) != 0 {
		t.Fatalf("rotation not finished: %v", done)
	}
	pool, err := TrustPool(done)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(chainOf(t, oldWorker), pool, time.Now()); !errors.Is(err, ErrCertificate) {
		t.Fatalf("old-root certificate after the rotation: %v", err)
	}
	if st := Status(done, nodes); st.GetRotating() || st.GetRenewed() != 1 || st.GetFingerprint() != Fingerprint(next.Cert) {
		t.Fatalf("status %v", st)
	}
	if Redact(done).GetRootCa().GetKey() != nil || done.GetRootCa().GetKey() == nil {
		t.Fatal("Redact must drop the key from a copy only")
	}
}

// An identity persists its key, chain and roots with mode 0600 and loads
// back; a renewal replaces the certificate in place.
func TestIdentityPersistsAndRenews(t *testing.T) {
	r := newRoot(t)
	dir := filepath.Join(t.TempDir(), "certs")
	id := NewIdentity(dir)
	key, csr, _ := NewKeyAndCSR("n1")
	is, err := r.Sign(csr, "n1", RoleWorker, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Set(key, is.ChainPEM, r.CertPEM); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CAFile, CertFile, KeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
	loaded, err := LoadIdentity(dir)
	if err != nil || loaded.Peer().Serial != is.Serial || loaded.Roots() == nil {
		t.Fatalf("loaded %+v, %v", loaded.Peer(), err)
	}
	changed := make(chan struct{}, 1)
	loaded.OnChange(func() { changed <- struct{}{} })
	ren := NewRenewer(loaded, func(_ context.Context, csr []byte) ([]byte, []byte, error) {
		is, err := r.Sign(csr, "n1", RoleWorker, time.Hour, time.Now())
		if err != nil {
			return nil, nil, err
		}
		return is.ChainPEM, r.CertPEM, nil
	}, slog.New(slog.DiscardHandler))
	if err := ren.RenewNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-changed
	if loaded.Peer().Serial == is.Serial {
		t.Fatal("renewal kept the old certificate")
	}
	again, _ := LoadIdentity(dir)
	if again.Peer().Serial != loaded.Peer().Serial {
		t.Fatal("renewed certificate not persisted")
	}
	if at := RenewAt(loaded.Leaf()); at.Before(time.Now().Add(35*time.Minute)) || at.After(time.Now().Add(45*time.Minute)) {
		t.Fatalf("renewal due at %s, want about 2/3 into a 1h lifetime", at)
	}
}
