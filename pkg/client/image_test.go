package client

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/registrytest"
	"github.com/minke-io/minke/pkg/ca"
)

func (f *fakeControl) GetCluster(context.Context, *minkepb.GetClusterRequest) (*minkepb.GetClusterResponse, error) {
	return &minkepb.GetClusterResponse{Cluster: &minkepb.Cluster{}, RegistryAddr: f.registryAddr}, nil
}

// IssueClientCertificate signs as the manager does on its unix socket.
func (f *fakeControl) IssueClientCertificate(_ context.Context, req *minkepb.IssueClientCertificateRequest) (*minkepb.IssueClientCertificateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.root == nil {
		return nil, status.Error(codes.PermissionDenied, "client certificates are made only on a manager's unix socket")
	}
	f.issued = append(f.issued, req.GetLifetime().AsDuration())
	is, err := f.root.Sign(req.GetCsr(), "client-test", ca.RoleClient, req.GetLifetime().AsDuration(), time.Now())
	if err != nil {
		return nil, err
	}
	return &minkepb.IssueClientCertificateResponse{Certificate: is.ChainPEM, CaCerts: f.root.CertPEM}, nil
}

func TestPushImage(t *testing.T) {
	srv := registrytest.Start(t, t.TempDir(), nil)
	reg := srv.Registry

	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag("docker.io/library/demo:v1")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "demo.tar")
	if err := tarball.WriteToFile(file, ref, img); err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	f := &fakeControl{svc: webService(1), registryAddr: srv.Addr, root: srv.Root}
	c := serve(t, f)
	tests := []struct{ nameTag, wantName, repo, tag string }{
		{"", "demo:v1", "demo", "v1"},
		{"team/web:2", "team/web:2", "team/web", "2"},
	}
	for _, tt := range tests {
		gotName, digest, err := c.PushImage(context.Background(), file, tt.nameTag)
		if err != nil {
			t.Fatalf("PushImage(%q): %v", tt.nameTag, err)
		}
		if gotName != tt.wantName || digest != want.String() {
			t.Errorf("PushImage(%q) = %q, %q; want %q, %q", tt.nameTag, gotName, digest, tt.wantName, want)
		}
		stored, ok, err := reg.Resolve(tt.repo, tt.tag)
		if err != nil || !ok || stored != want.String() {
			t.Errorf("registry holds %s:%s = %q, %v, %v; want %q", tt.repo, tt.tag, stored, ok, err, want)
		}
	}
	// Over the unix socket each push asks for a short-lived certificate.
	if len(f.issued) != len(tests) || f.issued[0] != PushCertLifetime {
		t.Errorf("client certificates issued for the pushes: %v, want %d of %s", f.issued, len(tests), PushCertLifetime)
	}
}

// TestPushImageCertificates: a client with a certificate (--tls-dir)
// pushes with it and asks for none; without one, and where the manager
// will not issue one (TCP), the push fails saying what to do; a worker's
// certificate cannot push.
func TestPushImageCertificates(t *testing.T) {
	srv := registrytest.Start(t, t.TempDir(), nil)
	img, _ := random.Image(128, 1)
	file := filepath.Join(t.TempDir(), "x.tar")
	if err := tarball.WriteToFile(file, mustTag(t, "x:1"), img); err != nil {
		t.Fatal(err)
	}

	f := &fakeControl{svc: webService(1), registryAddr: srv.Addr}
	c := serve(t, f)
	c.id = srv.Issue(t, "client-dir", ca.RoleClient)
	if _, _, err := c.PushImage(context.Background(), file, ""); err != nil {
		t.Fatalf("push with the --tls-dir certificate: %v", err)
	}
	if len(f.issued) != 0 {
		t.Errorf("a client with a certificate asked for %d more", len(f.issued))
	}

	c.id = nil
	_, _, err := c.PushImage(context.Background(), file, "")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "--tls-dir") {
		t.Errorf("push where no certificate is issued: %v, want PermissionDenied naming --tls-dir", err)
	}

	c.id = srv.Issue(t, "node-w1", ca.RoleWorker)
	if _, _, err := c.PushImage(context.Background(), file, "y:1"); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Errorf("push with a worker certificate: %v, want DENIED", err)
	}
	if _, ok, _ := srv.Registry.Resolve("y", "1"); ok {
		t.Error("the worker's push was stored")
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func TestPushImageWithoutRegistry(t *testing.T) {
	c := serve(t, &fakeControl{svc: webService(1)})
	if _, _, err := c.PushImage(context.Background(), "unused.tar", ""); err != ErrNoRegistry {
		t.Fatalf("err = %v, want ErrNoRegistry", err)
	}
}

// TestDialTLSDirPushesWithItsCertificate: the client certificate of
// --tls-dir is the one a push presents.
func TestDialTLSDirPushesWithItsCertificate(t *testing.T) {
	srv := registrytest.Start(t, t.TempDir(), nil)
	mem := srv.Issue(t, "client-dir", ca.RoleClient)
	dir := t.TempDir()
	key, csr, err := ca.NewKeyAndCSR("client-dir")
	if err != nil {
		t.Fatal(err)
	}
	is, err := srv.Root.Sign(csr, "client-dir", ca.RoleClient, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.NewIdentity(dir).Set(key, is.ChainPEM, mem.RootsPEM()); err != nil {
		t.Fatal(err)
	}
	c, err := Dial(context.Background(), "tcp://127.0.0.1:1", WithTLSDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, err := c.registryIdentity(context.Background())
	if err != nil {
		t.Fatalf("registryIdentity: %v", err)
	}
	if p := id.Peer(); p.ID != "client-dir" || p.Role != ca.RoleClient || p.Serial != is.Serial {
		t.Errorf("push identity %+v, want the --tls-dir certificate (serial %s)", p, is.Serial)
	}
}
