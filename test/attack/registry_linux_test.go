package attack

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/client"
	"github.com/minke-io/minke/pkg/registry"
)

// TestRegistryTrust attacks the built-in registry of a real manager: plain
// HTTP, TLS without a certificate and with a certificate of another CA are
// refused; a worker's certificate pulls but cannot push; once the worker
// is removed its certificate cannot pull either. The root user pushes
// through the unix socket as 'swarmctl image push' does. Every refusal is
// an OCI error the client shows, and a log line naming who was refused.
func TestRegistryTrust(t *testing.T) {
	tg := startManager(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := tg.control(t).GetCluster(ctx, &minkepb.GetClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	reg := cl.GetRegistryAddr()

	// The root user's push, over the unix socket.
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "app.tar")
	if err := tarball.WriteToFile(file, name.MustParseReference("attack/app:v1").(name.Tag), img); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, "unix://"+tg.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pushed, digest, err := c.PushImage(ctx, file, "")
	if err != nil {
		t.Fatalf("push through the unix socket: %v", err)
	}
	if want := mustDigest(t, img); pushed != "attack/app:v1" || digest != want {
		t.Fatalf("pushed %s@%s, want attack/app:v1@%s", pushed, digest, want)
	}

	tg.joinWorker(t)
	worker := tg.worker
	workerID := worker.Peer().ID
	ref := mustRef(t, reg+"/attack/app:v1")
	as := func(id *ca.Identity) []remote.Option {
		return []remote.Option{remote.WithContext(ctx), remote.WithTransport(registry.Transport(id.ClientTLS(ca.RoleManager)))}
	}

	t.Run("plain HTTP", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+reg+"/v2/attack/app/manifests/v1", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), digest) {
			t.Fatalf("plain HTTP = %d %q, want 400 and no manifest", resp.StatusCode, b)
		}
	})
	t.Run("no certificate", func(t *testing.T) {
		anon := ca.NewIdentity("")
		if err := anon.SetRoots(worker.RootsPEM()); err != nil {
			t.Fatal(err)
		}
		_, err := remote.Image(ref, as(anon)...)
		wantCode(t, err, transport.UnauthorizedErrorCode, "no client certificate")
	})
	t.Run("another cluster's certificate", func(t *testing.T) {
		other, err := ca.NewRootCA("other-cluster", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		key, csr, _ := ca.NewKeyAndCSR(workerID)
		is, err := other.Sign(csr, workerID, ca.RoleManager, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		forged := ca.NewIdentity("")
		if err := forged.Set(key, is.ChainPEM, worker.RootsPEM()); err != nil {
			t.Fatal(err)
		}
		_, err = remote.Image(ref, as(forged)...)
		wantCode(t, err, transport.UnauthorizedErrorCode, "not issued by this cluster")
	})
	t.Run("worker pulls", func(t *testing.T) {
		got, err := remote.Image(ref, as(worker)...)
		if err != nil {
			t.Fatalf("pull with the worker's certificate: %v", err)
		}
		if d := mustDigest(t, got); d != digest {
			t.Fatalf("pulled %s, pushed %s", d, digest)
		}
	})
	t.Run("worker cannot push", func(t *testing.T) {
		evil, _ := random.Image(64, 1)
		err := remote.Write(ref, evil, as(worker)...)
		wantCode(t, err, transport.DeniedErrorCode, "worker certificate")
		got, err := remote.Image(ref, as(worker)...)
		if err != nil || mustDigest(t, got) != digest {
			t.Fatalf("after the worker's push attack:v1 is %v (%v), want %s unchanged", got, err, digest)
		}
		tg.wantLog(t, "refused registry request", "node_id="+workerID, "role=worker")
	})
	t.Run("removed worker cannot pull", func(t *testing.T) {
		if _, err := tg.control(t).RemoveNode(ctx, &minkepb.RemoveNodeRequest{Node: workerID, Force: true}); err != nil {
			t.Fatal(err)
		}
		_, err := remote.Image(ref, as(worker)...)
		wantCode(t, err, transport.DeniedErrorCode, "revoked")
		tg.wantLog(t, "refused registry request", "node_id="+workerID, "revoked")
	})
	t.Run("revoked client certificate cannot push", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "client")
		if _, err := c.WriteClientCert(ctx, dir); err != nil {
			t.Fatal(err)
		}
		id, err := ca.LoadIdentity(dir)
		if err != nil {
			t.Fatal(err)
		}
		v2 := mustRef(t, reg+"/attack/app:v2")
		if err := remote.Write(v2, img, as(id)...); err != nil {
			t.Fatalf("push with a client certificate: %v", err)
		}
		if _, _, err := c.RevokeClientCert(ctx, dir); err != nil {
			t.Fatal(err)
		}
		evil, _ := random.Image(64, 1)
		err = remote.Write(v2, evil, as(id)...)
		wantCode(t, err, transport.DeniedErrorCode, "revoked")
		tg.wantLog(t, "refused registry request", "role=client", "revoked")
	})
	tg.stillServes(t)
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustDigest(t *testing.T, img interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// wantCode checks that err is the registry's OCI error code with a message
// containing msg.
func wantCode(t *testing.T, err error, code transport.ErrorCode, msg string) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want the registry's %s", err, code)
	}
	for _, d := range te.Errors {
		if d.Code == code && strings.Contains(d.Message, msg) {
			return
		}
	}
	t.Fatalf("err = %v, want %s with %q", err, code, msg)
}

// wantLog checks that one line of the manager's log holds every part.
func (tg *target) wantLog(t *testing.T, parts ...string) {
	t.Helper()
	for _, l := range strings.Split(tg.logs.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return
		}
	}
	t.Errorf("no log line with %q", parts)
}
