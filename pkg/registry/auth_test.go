package registry_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/minke-io/minke/internal/registrytest"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/registry"
)

// syncBuffer collects log output written from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T) (*registrytest.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	return registrytest.Start(t, t.TempDir(), slog.New(slog.NewTextHandler(logs, nil))), logs
}

// anonymous trusts the cluster's roots but holds no certificate.
func anonymous(t *testing.T, s *registrytest.Server) *ca.Identity {
	t.Helper()
	id := ca.NewIdentity("")
	if err := id.SetRoots(s.Root.CertPEM); err != nil {
		t.Fatal(err)
	}
	return id
}

// send makes one request as id and returns the status and the OCI error
// code ("" when the body holds none).
func send(t *testing.T, s *registrytest.Server, id *ca.Identity, method, path string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+s.Addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: registrytest.Transport(id)}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	_ = json.Unmarshal(b, &body)
	if len(body.Errors) > 0 {
		return resp.StatusCode, body.Errors[0].Code, body.Errors[0].Message
	}
	return resp.StatusCode, "", ""
}

func TestGuard(t *testing.T) {
	s, logs := start(t)
	other, err := ca.NewRootCA("another-cluster", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	worker := s.Issue(t, "node-w1", ca.RoleWorker)
	client := s.Issue(t, "client-c1", ca.RoleClient)
	manager := s.Issue(t, "node-m2", ca.RoleManager)
	revoked := s.Issue(t, "node-w2", ca.RoleWorker)
	s.Revoke(revoked)
	// Forged: the same names, issued by another cluster's CA; it trusts our
	// root so that the handshake gets as far as the request.
	forged := registrytest.IssueFrom(t, other, "node-m2", ca.RoleManager)
	if err := forged.SetRoots(s.Root.CertPEM); err != nil {
		t.Fatal(err)
	}
	// Expired: issued by the cluster, valid for an hour two hours ago.
	key, csr, _ := ca.NewKeyAndCSR("node-w3")
	is, err := s.Root.Sign(csr, "node-w3", ca.RoleWorker, time.Hour, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expired := ca.NewIdentity("")
	if err := expired.Set(key, is.ChainPEM, s.Root.CertPEM); err != nil {
		t.Fatal(err)
	}
	const upload = "/v2/demo/blobs/uploads/"
	tests := []struct {
		name         string
		id           *ca.Identity
		method, path string
		status       int
		code         string
		logged       string // in the refusal's log line
	}{
		{"no certificate: base", anonymous(t, s), http.MethodGet, "/v2/", 401, "UNAUTHORIZED", "node_id=\"\""},
		{"no certificate: push", anonymous(t, s), http.MethodPost, upload, 401, "UNAUTHORIZED", "method=POST"},
		{"another cluster's certificate", forged, http.MethodGet, "/v2/", 401, "UNAUTHORIZED", "node_id=node-m2"},
		{"expired certificate", expired, http.MethodGet, "/v2/", 401, "UNAUTHORIZED", "node_id=node-w3"},
		{"worker reads", worker, http.MethodGet, "/v2/", 200, "", ""},
		{"worker reads a manifest", worker, http.MethodGet, "/v2/demo/manifests/latest", 404, "MANIFEST_UNKNOWN", ""},
		{"worker heads a blob", worker, http.MethodHead, "/v2/demo/blobs/sha256:" + strings.Repeat("a", 64), 404, "", ""},
		{"worker starts an upload", worker, http.MethodPost, upload, 403, "DENIED", "role=worker"},
		{"worker puts a manifest", worker, http.MethodPut, "/v2/demo/manifests/latest", 403, "DENIED", "method=PUT"},
		{"worker deletes an upload", worker, http.MethodDelete, upload + "x", 403, "DENIED", "method=DELETE"},
		{"worker patches an upload", worker, http.MethodPatch, upload + "x", 403, "DENIED", "method=PATCH"},
		{"revoked worker reads", revoked, http.MethodGet, "/v2/", 403, "DENIED", "node_id=node-w2"},
		{"client pushes", client, http.MethodPost, upload, 202, "", ""},
		{"manager pushes", manager, http.MethodPost, upload, 202, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code, msg := send(t, s, tt.id, tt.method, tt.path)
			if status != tt.status || code != tt.code {
				t.Fatalf("%s %s = %d %s (%s), want %d %s", tt.method, tt.path, status, code, msg, tt.status, tt.code)
			}
			if tt.logged == "" {
				return
			}
			if msg == "" {
				t.Errorf("refusal without a message")
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "refused registry request") && strings.Contains(l, "method="+tt.method) && strings.Contains(l, tt.logged) {
					line = l
				}
			}
			if line == "" {
				t.Errorf("no log line of the refusal with %s; logs:\n%s", tt.logged, logs.String())
			}
		})
	}
}

// TestPlainHTTPRefused: the registry does not answer plain HTTP, and the
// registry transport does not send it.
func TestPlainHTTPRefused(t *testing.T) {
	s, _ := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr+"/v2/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTPS") {
		t.Errorf("plain HTTP GET /v2/ = %d %q, want 400 (an HTTP request to an HTTPS server)", resp.StatusCode, b)
	}

	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr+"/v2/", nil)
	_, err = (&http.Client{Transport: registrytest.Transport(s.Issue(t, "node-w1", ca.RoleWorker))}).Do(req)
	if !errors.Is(err, registry.ErrPlainHTTP) {
		t.Errorf("registry transport over http:// = %v, want ErrPlainHTTP", err)
	}
}

// TestPushPullWithCertificates runs go-containerregistry, as every user of
// the registry does: a client certificate pushes, a worker's pulls and
// cannot push, a certificate of another CA does neither.
func TestPushPullWithCertificates(t *testing.T) {
	s, _ := start(t)
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(s.Addr + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	as := func(id *ca.Identity) []remote.Option {
		return []remote.Option{remote.WithContext(ctx), remote.WithTransport(registrytest.Transport(id))}
	}
	if err := remote.Write(ref, img, as(s.Issue(t, "client-c1", ca.RoleClient))...); err != nil {
		t.Fatalf("push with a client certificate: %v", err)
	}
	worker := s.Issue(t, "node-w1", ca.RoleWorker)
	pulled, err := remote.Image(ref, as(worker)...)
	if err != nil {
		t.Fatalf("pull with a worker certificate: %v", err)
	}
	if got, want := digestOf(t, pulled), digestOf(t, img); got != want {
		t.Fatalf("pulled %s, pushed %s", got, want)
	}
	if _, err := remote.Image(ref, as(anonymous(t, s))...); !hasCode(err, transport.UnauthorizedErrorCode) {
		t.Errorf("pull without a certificate: %v, want UNAUTHORIZED", err)
	}
	other, _ := ca.NewRootCA("another-cluster", time.Now())
	forged := registrytest.IssueFrom(t, other, "node-w1", ca.RoleWorker)
	_ = forged.SetRoots(s.Root.CertPEM)
	if _, err := remote.Image(ref, as(forged)...); !hasCode(err, transport.UnauthorizedErrorCode) {
		t.Errorf("pull with another CA's certificate: %v, want UNAUTHORIZED", err)
	}
	img2, _ := random.Image(256, 1)
	ref2, _ := name.NewTag(s.Addr + "/team/app:v2")
	if err := remote.Write(ref2, img2, as(worker)...); !hasCode(err, transport.DeniedErrorCode) {
		t.Errorf("push with a worker certificate: %v, want DENIED", err)
	}
	if _, ok, _ := s.Registry.Resolve("team/app", "v2"); ok {
		t.Error("the worker's push was stored")
	}
	// A client that does not trust the cluster's CA stops at the handshake:
	// the registry's certificate is not from the roots it holds.
	stranger := registrytest.IssueFrom(t, other, "client-x", ca.RoleClient)
	if _, err := remote.Image(ref, as(stranger)...); err == nil || !strings.Contains(err.Error(), "not issued by this cluster") {
		t.Errorf("pull from a registry of another cluster: %v, want the manager's certificate refused", err)
	}
}

func digestOf(t *testing.T, img interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func hasCode(err error, code transport.ErrorCode) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	for _, d := range te.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// TestReplicaHeaderOnlyFromManagers: a push marked as a copy between
// managers skips replication only when a manager makes it; anyone else's
// is replicated like any push.
func TestReplicaHeaderOnlyFromManagers(t *testing.T) {
	var (
		mu     sync.Mutex
		tagged []string
	)
	s := registrytest.Start(t, t.TempDir(), nil, func(r *registry.Registry) {
		r.OnTag(func(_ context.Context, repo, tag, _ string) error {
			mu.Lock()
			defer mu.Unlock()
			tagged = append(tagged, repo+":"+tag)
			return nil
		})
	})
	img, _ := random.Image(128, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, who := range []struct{ id, role string }{{"client-1", ca.RoleClient}, {"node-m2", ca.RoleManager}} {
		ref, _ := name.NewTag(s.Addr + "/copy:" + who.role)
		tr := replicaMarker{registrytest.Transport(s.Issue(t, who.id, who.role))}
		if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(tr)); err != nil {
			t.Fatalf("push as %s: %v", who.role, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tagged) != 1 || tagged[0] != "copy:"+ca.RoleClient {
		t.Errorf("replicated pushes %v, want only the client's (copy:%s)", tagged, ca.RoleClient)
	}
}

type replicaMarker struct{ base http.RoundTripper }

func (m replicaMarker) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(registry.ReplicaHeader, "1")
	return m.base.RoundTrip(req)
}

// TestTransportForNewCertificate: once the holder renews, a kept-alive
// connection made with the old certificate is not reused, so revoking (or
// rotating away) the old one does not break the holder's requests.
func TestTransportForNewCertificate(t *testing.T) {
	s, _ := start(t)
	id := s.Issue(t, "node-w1", ca.RoleWorker)
	hc := &http.Client{Transport: registrytest.Transport(id)}
	get := func() int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.Addr+"/v2/", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("GET /v2/ = %d", code)
	}
	renewed := s.Issue(t, "node-w1", ca.RoleWorker)
	oldSerial := id.Peer().Serial
	key := renewed.Certificate().PrivateKey.(crypto.Signer)
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: renewed.Certificate().Certificate[0]})
	if err := id.Set(key, chain, nil); err != nil {
		t.Fatal(err)
	}
	s.RevokeSerial(oldSerial)
	if code := get(); code != http.StatusOK {
		t.Fatalf("GET /v2/ after renewal and revocation of the old certificate = %d, want 200 (a new connection with the new certificate)", code)
	}
}
