package manager

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/minke-io/minke/internal/registrytest"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/imagetar"
)

func TestResolveImage(t *testing.T) {
	srv := registrytest.Start(t, t.TempDir(), slog.New(slog.DiscardHandler))
	reg := srv.Registry
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := imagetar.Push(context.Background(), srv.Addr, registrytest.Transport(srv.Issue(t, "client-1", ca.RoleClient)), img, "hello:latest")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	m := &Manager{registry: reg, regLis: lis, raft: storetest.New(t), nodeID: "m1"}
	pinned := lis.Addr().String() + "/hello@" + digest
	cases := []struct{ in, want string }{
		{"hello:latest", pinned},
		{"hello", pinned}, // latest is implied
		{"docker.io/library/hello:latest", "docker.io/library/hello:latest"}, // an explicit registry is honoured
		{"hello:other", "hello:other"},
		{"quay.io/x/hello:latest", "quay.io/x/hello:latest"},
		{"bad image!", "bad image!"},
	}
	for _, c := range cases {
		if got := m.resolveImage(c.in); got != c.want {
			t.Errorf("resolveImage(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{DataDir: "/d", ListenAddr: "10.0.0.1:5000"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.RaftAddr != "10.0.0.1:4243" || c.GossipAddr != "10.0.0.1:4244" || c.RegistryAddr != "10.0.0.1:4245" || c.ControlSocket != DefaultSocket {
		t.Fatalf("defaults: %+v", c)
	}
	for _, bad := range []Config{{}, {DataDir: "/d", ListenAddr: "nohost"}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
