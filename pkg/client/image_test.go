package client

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/registry"
)

func (f *fakeControl) GetCluster(context.Context, *minkepb.GetClusterRequest) (*minkepb.GetClusterResponse, error) {
	return &minkepb.GetClusterResponse{Cluster: &minkepb.Cluster{}, RegistryAddr: f.registryAddr}, nil
}

func TestPushImage(t *testing.T) {
	reg, err := registry.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()

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

	c := serve(t, &fakeControl{svc: webService(1), registryAddr: strings.TrimPrefix(srv.URL, "http://")})
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
}

func TestPushImageWithoutRegistry(t *testing.T) {
	c := serve(t, &fakeControl{svc: webService(1)})
	if _, _, err := c.PushImage(context.Background(), "unused.tar", ""); err != ErrNoRegistry {
		t.Fatalf("err = %v, want ErrNoRegistry", err)
	}
}
