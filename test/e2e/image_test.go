//go:build linux

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/imagetar"
)

// TestOutsideRegistry runs services from a registry other than the
// cluster's, one that wants credentials (basic auth, on loopback): the
// manager pins the tag to a digest at create, the worker pulls with the
// node's docker config, and each kind of bad image ends as an error that
// says which and why.
func TestOutsideRegistry(t *testing.T) {
	const user, pass = "ci", "s3cret"
	regHandler := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		regHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	loaded, err := imagetar.Load(HelloTar)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/team/hello:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, loaded[0].Image, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}
	digest, err := loaded[0].Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	creds, _ := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}})
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), creds, 0o600); err != nil {
		t.Fatal(err)
	}

	c := NewCluster(t)
	c.StartManager("m1", ManagerOptions{Worker: true, Args: []string{"--registry-config", cfgDir}})

	t.Run("tag pinned to its digest and run", func(t *testing.T) {
		c := c.With(t)
		c.MustCtl("service", "create", "--name", "outside", host+"/team/hello:v1")
		t.Cleanup(func() { c.Ctl("service", "rm", "outside") })
		tasks := c.WaitRunning("outside", 1, 60*time.Second)
		want := host + "/team/hello:v1@" + digest.String()
		if got := tasks[0].GetImage(); got != want {
			t.Errorf("task image %q, want %q", got, want)
		}
		if got := tasks[0].GetSpec().GetContainer().GetImage(); got != want {
			t.Errorf("task spec image %q, want %q", got, want)
		}
	})

	t.Run("tag that does not exist", func(t *testing.T) {
		c := c.With(t)
		r := c.Ctl("service", "create", "--name", "notag", host+"/team/hello:nope")
		checkOneLineError(t, r.Code, r.Stderr, "image not found", "team/hello:nope", "MANIFEST_UNKNOWN")
		if r := c.Ctl("service", "inspect", "notag"); r.Code == 0 {
			t.Errorf("service stored despite the missing image: %s", r)
		}
	})

	t.Run("credentials refused", func(t *testing.T) {
		c := c.With(t)
		// Same registry under another name: the config has no credentials
		// for it.
		other := strings.Replace(host, "127.0.0.1", "localhost", 1)
		r := c.Ctl("service", "create", "--name", "nocreds", other+"/team/hello:v1")
		checkOneLineError(t, r.Code, r.Stderr, "registry refused access", "--registry-config")
	})

	t.Run("registry unreachable: the task is rejected saying why", func(t *testing.T) {
		c := c.With(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := l.Addr().String()
		l.Close()
		img := down + "/team/hello:v1"
		r := c.Ctl("service", "create", "--name", "down", img)
		t.Cleanup(func() { c.Ctl("service", "rm", "down") })
		if r.Code != 1 || !strings.Contains(r.Stderr, img) {
			t.Errorf("want exit 1 and an error naming %s; got %s", img, r)
		}
		task := findTask(c.Tasks("down"), minkepb.TaskState_REJECTED)
		if task == nil {
			t.Fatalf("no REJECTED task: %v", c.Tasks("down"))
		}
		if msg, e := task.GetStatus().GetMessage(), task.GetStatus().GetErr(); msg != "image registry unreachable" ||
			!strings.Contains(e, "connection refused") || !strings.Contains(e, img) {
			t.Errorf("task status %q / %q, want the cause and the reason", msg, e)
		}
	})
}
