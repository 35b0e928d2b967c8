package runtime

import (
	"context"
	"errors"
	"log/slog"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/minke-io/minke/internal/registrytest"
	"github.com/minke-io/minke/pkg/ca"
)

// TestPullFromClusterRegistry: the cluster's registry answers only a
// certificate of the cluster over TLS; the runtime pulls from it with the
// node's transport once the session names it — also when it is listed as
// an insecure registry — and a revoked node's pull is refused.
func TestPullFromClusterRegistry(t *testing.T) {
	srv := registrytest.Start(t, t.TempDir(), slog.New(slog.DiscardHandler))
	img := testImage(t, goruntime.GOARCH, true, testLayer(t, map[string]string{"bin/app": "from the cluster"}, compression.GZip, types.OCILayer))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tag := range []string{"app:v1", "app:v2", "app:v3"} {
		ref, err := name.NewTag(srv.Addr + "/" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(registrytest.Transport(srv.Issue(t, "client-1", ca.RoleClient)))); err != nil {
			t.Fatal(err)
		}
	}
	worker := srv.Issue(t, "node-w1", ca.RoleWorker)

	r := newPullRuntime(t, func(c *Config) { c.InsecureRegistries = []string{srv.Addr} })
	_, err := r.Pull(ctx, srv.Addr+"/app:v1")
	if !errors.Is(err, ErrPull) {
		t.Fatalf("pull before the session named the registry: %v, want ErrPull (no certificate, and no plain HTTP)", err)
	}
	t.Logf("pull without the node's certificate: %v", err)
	r.UseClusterRegistries([]string{"127.0.0.1:1", srv.Addr}, registrytest.Transport(worker))
	got, err := r.Pull(ctx, srv.Addr+"/app:v2")
	if err != nil {
		t.Fatalf("pull with the node's certificate: %v", err)
	}
	if s := readLayerFile(t, r, got, "bin/app"); s != "from the cluster" {
		t.Errorf("bin/app = %q", s)
	}

	srv.Revoke(worker)
	if _, err := r.Pull(ctx, srv.Addr+"/app:v3"); !errors.Is(err, ErrPull) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("pull with a revoked certificate: %v, want ErrPull naming the revocation", err)
	}
}
