package manager

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/controlapi"
	"github.com/minke-io/minke/pkg/regclient"
)

// outsideRegistry is an in-memory OCI registry on loopback standing in for
// Docker Hub or any other registry; it counts requests and may require
// basic auth.
type outsideRegistry struct {
	host     string
	requests atomic.Int64
}

func newOutsideRegistry(t *testing.T, user, pass string) *outsideRegistry {
	t.Helper()
	o := &outsideRegistry{}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		if user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	o.host = strings.TrimPrefix(srv.URL, "http://")
	return o
}

func (o *outsideRegistry) push(t *testing.T, repoTag string, img any, opts ...remote.Option) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(o.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	var d v1.Hash
	switch v := img.(type) {
	case v1.Image:
		err = remote.Write(ref, v, opts...)
		d, _ = v.Digest()
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, v, opts...)
		d, _ = v.Digest()
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func credsFile(t *testing.T, host, user, pass string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}})
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImagePinner(t *testing.T) {
	reg := newOutsideRegistry(t, "", "")
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := reg.push(t, "app:v1", img)
	reg.push(t, "app:latest", img)
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	di := reg.push(t, "multi:v1", idx)
	locked := newOutsideRegistry(t, "bob", "pw")
	locked.push(t, "app:v1", img, remote.WithAuth(&authn.Basic{Username: "bob", Password: "pw"}))
	down := closedAddr(t)

	tests := []struct {
		name     string
		image    string
		keychain string // config file; "" anonymous
		builtin  bool
		want     string
		wantErr  error
	}{
		{"tag", reg.host + "/app:v1", "", false, reg.host + "/app:v1@" + d.String(), nil},
		{"implicit latest", reg.host + "/app", "", false, reg.host + "/app:latest@" + d.String(), nil},
		{"multi-arch pins the index", reg.host + "/multi:v1", "", false, reg.host + "/multi:v1@" + di.String(), nil},
		{"digest that exists", reg.host + "/app@" + d.String(), "", false, reg.host + "/app@" + d.String(), nil},
		{"tag that does not exist", reg.host + "/app:nope", "", false, "", regclient.ErrNotFound},
		{"repository that does not exist", reg.host + "/nothing:v1", "", false, "", regclient.ErrNotFound},
		{"digest that does not exist", reg.host + "/app@sha256:" + strings.Repeat("0", 64), "", false, "", regclient.ErrNotFound},
		{"no credentials", locked.host + "/app:v1", "", false, "", regclient.ErrUnauthorized},
		{"wrong credentials", locked.host + "/app:v1", credsFile(t, locked.host, "bob", "wrong"), false, "", regclient.ErrUnauthorized},
		{"right credentials", locked.host + "/app:v1", credsFile(t, locked.host, "bob", "pw"), false, locked.host + "/app:v1@" + d.String(), nil},
		{"unreachable registry: left to the workers", down + "/app:v1", "", false, down + "/app:v1", nil},
		{"cluster registry: left to the orchestrator", "hello:latest", "", true, "hello:latest", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kc := authn.Keychain(authn.NewMultiKeychain()) // anonymous
			if tc.keychain != "" {
				if kc, err = regclient.Keychain(tc.keychain); err != nil {
					t.Fatal(err)
				}
			}
			p := &imagePinner{
				builtin:  func(context.Context, string) bool { return tc.builtin },
				keychain: kc, timeout: 5 * time.Second, log: slog.New(slog.DiscardHandler),
			}
			got, err := p.pin(context.Background(), tc.image)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("pin = %q, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("pin = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

type testLeader struct{}

func (testLeader) IsLeader() bool                     { return true }
func (testLeader) VerifyLeader(context.Context) error { return nil }
func (testLeader) Leader(context.Context) (minkepb.ControlClient, string, error) {
	return nil, "", errors.New("this is the leader")
}

func TestPinningControl(t *testing.T) {
	reg := newOutsideRegistry(t, "", "")
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	d1 := reg.push(t, "web:v1", img)
	store := storetest.New(t)
	m := &Manager{raft: store, log: slog.New(slog.DiscardHandler)}
	fwd := controlapi.NewForwarder(controlapi.New(controlapi.Config{Store: store, Logger: slog.New(slog.DiscardHandler)}), testLeader{})
	ctl, err := m.newPinningControl(fwd)
	if err != nil {
		t.Fatal(err)
	}
	ctl.pinner.builtin = nil
	ctl.pinner.keychain = authn.NewMultiKeychain()
	spec := func(name, image string) *minkepb.ServiceSpec {
		return &minkepb.ServiceSpec{Name: name,
			Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: image}},
			Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 1}}}
	}
	ctx := context.Background()

	created, err := ctl.CreateService(ctx, &minkepb.CreateServiceRequest{Spec: spec("web", reg.host+"/web:v1")})
	if err != nil {
		t.Fatal(err)
	}
	svc := created.GetService()
	if got, want := svc.GetSpec().GetTask().GetContainer().GetImage(), reg.host+"/web:v1@"+d1.String(); got != want {
		t.Fatalf("stored image %q, want %q", got, want)
	}

	t.Run("missing image fails the create", func(t *testing.T) {
		_, err := ctl.CreateService(ctx, &minkepb.CreateServiceRequest{Spec: spec("bad", reg.host+"/web:nope")})
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "web:nope") {
			t.Fatalf("err = %v, want NotFound naming the image", err)
		}
		if _, err := fwd.GetService(ctx, &minkepb.GetServiceRequest{Service: "bad"}); status.Code(err) != codes.NotFound {
			t.Fatalf("service stored despite the missing image: %v", err)
		}
	})

	t.Run("a follower leaves pinning to the leader", func(t *testing.T) {
		ctl.isLeader = func() bool { return false }
		defer func() { ctl.isLeader = func() bool { return true } }()
		before := reg.requests.Load()
		r, err := ctl.CreateService(ctx, &minkepb.CreateServiceRequest{Spec: spec("raw", reg.host+"/web:v1")})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.GetService().GetSpec().GetTask().GetContainer().GetImage(); got != reg.host+"/web:v1" {
			t.Fatalf("a follower pinned %q itself", got)
		}
		if n := reg.requests.Load() - before; n != 0 {
			t.Fatalf("a follower made %d registry requests", n)
		}
	})

	t.Run("update keeps the pinned digest unless the image changes", func(t *testing.T) {
		img2, _ := random.Image(128, 1)
		d2 := reg.push(t, "web:v1", img2) // the tag moves
		before := reg.requests.Load()
		next := spec("web", svc.GetSpec().GetTask().GetContainer().GetImage())
		next.Labels = map[string]string{"x": "y"}
		up, err := ctl.UpdateService(ctx, &minkepb.UpdateServiceRequest{ServiceId: "web", ServiceVersion: svc.GetMeta().GetVersion(), Spec: next})
		if err != nil {
			t.Fatal(err)
		}
		if got := up.GetService().GetSpec().GetTask().GetContainer().GetImage(); !strings.HasSuffix(got, d1.String()) {
			t.Fatalf("image %q after an update of labels, want still %s", got, d1)
		}
		if n := reg.requests.Load() - before; n != 0 {
			t.Fatalf("%d registry requests for an update that kept the image", n)
		}
		// Naming the tag again resolves it again (docker's --image).
		next = spec("web", reg.host+"/web:v1")
		up, err = ctl.UpdateService(ctx, &minkepb.UpdateServiceRequest{ServiceId: "web", ServiceVersion: up.GetService().GetMeta().GetVersion(), Spec: next})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := up.GetService().GetSpec().GetTask().GetContainer().GetImage(), reg.host+"/web:v1@"+d2.String(); got != want {
			t.Fatalf("image %q, want %q", got, want)
		}
	})
}

func TestImagePinnerInsecure(t *testing.T) {
	p := &imagePinner{insecure: map[string]bool{"registry.internal:5000": true}}
	for image, want := range map[string]string{
		"registry.internal:5000/app:v1": "http",
		"registry.internal:5001/app:v1": "https",
		"ghcr.io/org/app:v1":            "https",
	} {
		ref, err := p.parse(image)
		if err != nil {
			t.Fatal(err)
		}
		if got := ref.Context().Scheme(); got != want {
			t.Errorf("%s: scheme %s, want %s", image, got, want)
		}
	}
}

// A registry in trouble is asked once: the user waits on the API call.
func TestResolveDoesNotRetry(t *testing.T) {
	var manifests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			manifests.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK) // the /v2/ ping
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	p := &imagePinner{keychain: authn.NewMultiKeychain(), timeout: 30 * time.Second, log: slog.New(slog.DiscardHandler)}
	got, err := p.pin(context.Background(), host+"/app:v1")
	if err != nil || got != host+"/app:v1" {
		t.Fatalf("pin = %q, %v; want the image unpinned (registry unavailable)", got, err)
	}
	if n := manifests.Load(); n != 1 {
		t.Fatalf("%d manifest requests, want 1 (no retries)", n)
	}
	// Found unreachable, it is not asked again for a while.
	if got, err := p.pin(context.Background(), host+"/other:v2"); err != nil || got != host+"/other:v2" {
		t.Fatalf("pin = %q, %v; want the image unpinned", got, err)
	}
	if n := manifests.Load(); n != 1 {
		t.Fatalf("%d manifest requests after the registry was found down, want still 1", n)
	}
}
