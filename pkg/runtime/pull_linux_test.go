package runtime

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/minke-io/minke/pkg/regclient"
)

// testRegistry is go-containerregistry's in-memory registry on loopback,
// behind an optional middleware (auth, counting, corruption).
type testRegistry struct {
	srv  *httptest.Server
	host string
}

func newTestRegistry(t *testing.T, mw func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if mw != nil {
		h = mw(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testRegistry{srv: srv, host: strings.TrimPrefix(srv.URL, "http://")}
}

func (tr *testRegistry) ref(repoTag string) string { return tr.host + "/" + repoTag }

// push writes img (a v1.Image or v1.ImageIndex) as repoTag, with opts
// (credentials) if the registry needs them.
func (tr *testRegistry) push(t *testing.T, repoTag string, img any, opts ...remote.Option) {
	t.Helper()
	ref, err := name.ParseReference(tr.ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	switch v := img.(type) {
	case v1.Image:
		err = remote.Write(ref, v, opts...)
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, v, opts...)
	}
	if err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
}

func tarBytes(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range sortedKeys(files) {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := range out { // tiny maps: insertion sort keeps tars deterministic
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// testLayer makes a layer holding files, compressed as comp ("none",
// "gzip", "zstd") with media type mt.
func testLayer(t *testing.T, files map[string]string, comp compression.Compression, mt types.MediaType) v1.Layer {
	t.Helper()
	b := tarBytes(t, files)
	if comp == compression.None {
		return static.NewLayer(b, mt)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithCompression(comp), tarball.WithMediaType(mt))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testImage stacks layers into an image for os/arch; oci selects OCI media
// types instead of docker schema2.
func testImage(t *testing.T, arch string, oci bool, layers ...v1.Layer) v1.Image {
	t.Helper()
	base := empty.Image
	if oci {
		base = mutate.MediaType(mutate.ConfigMediaType(base, types.OCIConfigJSON), types.OCIManifestSchema1)
	}
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.Entrypoint = []string{"/bin/app"}
	cfg.Config.Env = []string{"ARCH=" + arch}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func newPullRuntime(t *testing.T, mod func(*Config)) *Runtime {
	t.Helper()
	requireRoot(t)
	cfg := Config{
		Root:         t.TempDir(),
		CgroupParent: fmt.Sprintf("minke-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")),
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroupParent(r) })
	return r
}

func readLayerFile(t *testing.T, r *Runtime, img Image, path string) string {
	t.Helper()
	for i := len(img.Layers) - 1; i >= 0; i-- {
		b, err := os.ReadFile(filepath.Join(r.layerDir(digestHex(img.Layers[i])), path))
		if err == nil {
			return string(b)
		}
	}
	t.Fatalf("%s in none of the layers of %s", path, img.Ref)
	return ""
}

func TestPullFormats(t *testing.T) {
	reg := newTestRegistry(t, nil)
	arch := goruntime.GOARCH
	other := "s390x"
	if arch == other {
		other = "riscv64"
	}
	base := map[string]string{"etc/os-release": "ID=test\n"}
	app := func(s string) map[string]string { return map[string]string{"bin/app": s} }
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: testImage(t, other, false, testLayer(t, app("wrong"), compression.GZip, types.DockerLayer)),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: testImage(t, arch, false, testLayer(t, base, compression.GZip, types.DockerLayer), testLayer(t, app("right"), compression.GZip, types.DockerLayer)),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}},
	)
	ociIdx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: testImage(t, arch, true, testLayer(t, app("oci-index"), compression.ZStd, types.OCILayerZStd)),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}},
	), types.OCIImageIndex)
	tests := []struct {
		name string
		img  any
		want string // content of /bin/app
	}{
		{"docker schema2 gzip", testImage(t, arch, false, testLayer(t, base, compression.GZip, types.DockerLayer), testLayer(t, app("schema2"), compression.GZip, types.DockerLayer)), "schema2"},
		{"oci gzip", testImage(t, arch, true, testLayer(t, app("oci-gzip"), compression.GZip, types.OCILayer)), "oci-gzip"},
		{"oci zstd", testImage(t, arch, true, testLayer(t, base, compression.ZStd, types.OCILayerZStd), testLayer(t, app("oci-zstd"), compression.ZStd, types.OCILayerZStd)), "oci-zstd"},
		{"uncompressed", testImage(t, arch, true, testLayer(t, app("plain"), compression.None, types.OCIUncompressedLayer)), "plain"},
		{"docker manifest list picks this platform", idx, "right"},
		{"oci index", ociIdx, "oci-index"},
	}
	r := newPullRuntime(t, nil)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tag := fmt.Sprintf("formats:v%d", i)
			reg.push(t, tag, tc.img)
			img, err := r.Pull(context.Background(), reg.ref(tag))
			if err != nil {
				t.Fatal(err)
			}
			if got := readLayerFile(t, r, img, "bin/app"); got != tc.want {
				t.Fatalf("/bin/app = %q, want %q", got, tc.want)
			}
			if want := []string{"ARCH=" + arch}; len(img.Config.Env) != 1 || img.Config.Env[0] != want[0] {
				t.Fatalf("env = %q, want %q (config of this platform)", img.Config.Env, want)
			}
			local, err := r.LocalImage(reg.ref(tag))
			if err != nil || local.Digest != img.Digest {
				t.Fatalf("LocalImage = %+v, %v; want digest %s", local, err, img.Digest)
			}
		})
	}
	t.Run("layers are shared by content", func(t *testing.T) {
		// "base" is in three of the images above: one directory.
		n := 0
		entries, _ := os.ReadDir(filepath.Join(r.root, "layers"))
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(r.root, "layers", e.Name(), "etc/os-release")); err == nil {
				n++
			}
		}
		// gzip and zstd of the same tar have the same diff id.
		if n != 1 {
			t.Fatalf("base layer unpacked %d times, want once", n)
		}
	})
}

// blobCounter counts blob GETs per digest, and holds them until released.
type blobCounter struct {
	mu      sync.Mutex
	gets    map[string]int
	release chan struct{}
}

func (c *blobCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
			c.mu.Lock()
			c.gets[req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]]++
			c.mu.Unlock()
			select {
			case <-c.release:
			case <-req.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, req)
	})
}

func TestPullConcurrentIsOnePull(t *testing.T) {
	bc := &blobCounter{gets: map[string]int{}, release: make(chan struct{})}
	reg := newTestRegistry(t, bc.wrap)
	img := testImage(t, goruntime.GOARCH, true,
		testLayer(t, map[string]string{"a": "1"}, compression.GZip, types.OCILayer),
		testLayer(t, map[string]string{"b": "2"}, compression.GZip, types.OCILayer))
	close(bc.release) // pushing does not GET blobs, but be safe
	bc.release = make(chan struct{})
	reg.push(t, "conc:v1", img)
	r := newPullRuntime(t, nil)

	const callers = 5
	ref := reg.ref("conc:v1")
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := r.Pull(context.Background(), ref)
			errs <- err
		}()
	}
	// Let the blobs through only once every caller waits on the one pull.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		f := r.flights["pull:"+ref]
		waiting := f != nil && f.waiters == callers
		r.mu.Unlock()
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			close(bc.release)
			t.Fatal("the callers never all waited on one pull")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by deadline
	}
	close(bc.release)
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	bc.mu.Lock()
	defer bc.mu.Unlock()
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if n := bc.gets[d.String()]; n != 1 {
			t.Errorf("layer blob %s fetched %d times by %d concurrent pulls, want 1", d, n, callers)
		}
	}
}

// authMiddleware guards a registry: "basic" answers a Basic challenge;
// "token" answers a Bearer challenge whose realm (on the same server)
// trades the basic credentials for a token, as Docker Hub does.
func authMiddleware(kind, user, pass string) func(http.Handler) http.Handler {
	const token = "test-token-7f3a"
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if kind == "token" && req.URL.Path == "/token" {
				u, p, ok := req.BasicAuth()
				if !ok || u != user || p != pass {
					w.WriteHeader(http.StatusUnauthorized)
					_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}`)
					return
				}
				_ = json.NewEncoder(w).Encode(map[string]string{"token": token})
				return
			}
			switch kind {
			case "basic":
				if u, p, ok := req.BasicAuth(); ok && u == user && p == pass {
					h.ServeHTTP(w, req)
					return
				}
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			case "token":
				if req.Header.Get("Authorization") == "Bearer "+token {
					h.ServeHTTP(w, req)
					return
				}
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test",scope="repository:app:pull"`, req.Host))
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		})
	}
}

// dockerConfig writes a config.json holding user:pass for host.
func dockerConfig(t *testing.T, host, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))},
	}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPullCredentials(t *testing.T) {
	img := testImage(t, goruntime.GOARCH, true, testLayer(t, map[string]string{"secret": "s"}, compression.GZip, types.OCILayer))
	for _, kind := range []string{"basic", "token"} {
		reg := newTestRegistry(t, authMiddleware(kind, "alice", "s3cret"))
		reg.push(t, "app:v1", img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"}))
		tests := []struct {
			name    string
			cfg     string // RegistryConfig; "" = none (DOCKER_CONFIG unset)
			wantErr error
		}{
			{"right credentials", dockerConfig(t, reg.host, "alice", "s3cret"), nil},
			{"wrong password", dockerConfig(t, reg.host, "alice", "nope"), regclient.ErrUnauthorized},
			{"credentials for another registry", dockerConfig(t, "127.0.0.1:1", "alice", "s3cret"), regclient.ErrUnauthorized},
			{"config file path", filepath.Join(dockerConfig(t, reg.host, "alice", "s3cret"), "config.json"), nil},
		}
		for _, tc := range tests {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				r := newPullRuntime(t, func(c *Config) { c.RegistryConfig = tc.cfg })
				_, err := r.Pull(context.Background(), reg.ref("app:v1"))
				if tc.wantErr == nil {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrPull) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), reg.ref("app:v1")) {
					t.Errorf("error %q does not name the image", err)
				}
			})
		}
	}
	t.Run("missing config file", func(t *testing.T) {
		requireRoot(t)
		_, err := New(Config{Root: t.TempDir(), RegistryConfig: filepath.Join(t.TempDir(), "nope.json")})
		if err == nil || !strings.Contains(err.Error(), "nope.json") {
			t.Fatalf("err = %v, want one naming the missing file", err)
		}
	})
}

// corruptBlobs serves every layer blob with one byte flipped (same length,
// so only the digest check can tell).
func corruptBlobs(layerDigest string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/blobs/"+layerDigest) {
				h.ServeHTTP(w, req)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			b := rec.Body.Bytes()
			if len(b) > 0 {
				b[len(b)/2] ^= 0xff
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(b)
		})
	}
}

func TestPullFailures(t *testing.T) {
	good := testImage(t, goruntime.GOARCH, true, testLayer(t, map[string]string{"f": strings.Repeat("x", 4096)}, compression.GZip, types.OCILayer))
	layers, _ := good.Layers()
	ld, _ := layers[0].Digest()
	reg := newTestRegistry(t, nil)
	reg.push(t, "app:v1", good)
	bad := newTestRegistry(t, corruptBlobs(ld.String()))
	bad.push(t, "app:v1", good)
	// Uncompressed, a flipped byte of file data unpacks fine: only the
	// digest check catches it.
	plain := testImage(t, goruntime.GOARCH, true, testLayer(t, map[string]string{"f": strings.Repeat("x", 4096)}, compression.None, types.OCIUncompressedLayer))
	pls, _ := plain.Layers()
	pld, _ := pls[0].Digest()
	badPlain := newTestRegistry(t, corruptBlobs(pld.String()))
	badPlain.push(t, "app:v1", plain)
	other := "s390x"
	if goruntime.GOARCH == other {
		other = "riscv64"
	}
	foreign := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        testImage(t, other, true, testLayer(t, map[string]string{"f": "1"}, compression.GZip, types.OCILayer)),
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}},
	})
	reg.push(t, "foreign:v1", foreign)
	closed := closedPort(t)

	tests := []struct {
		name    string
		ref     string
		wantErr error
		wantMsg string
	}{
		{"tag that does not exist", reg.ref("app:nope"), regclient.ErrNotFound, "MANIFEST_UNKNOWN"},
		{"repository that does not exist", reg.ref("nothing:v1"), regclient.ErrNotFound, ""},
		{"no manifest for this platform", reg.ref("foreign:v1"), regclient.ErrNotFound, "platform"},
		{"registry unreachable", closed + "/app:v1", regclient.ErrUnreachable, "connection refused"},
		{"corrupt gzip blob", bad.ref("app:v1"), regclient.ErrCorrupt, ld.String()},
		{"corrupt uncompressed blob", badPlain.ref("app:v1"), regclient.ErrCorrupt, "error verifying sha256 checksum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newPullRuntime(t, nil)
			_, err := r.Pull(context.Background(), tc.ref)
			if !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrPull) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.wantErr, tc.wantMsg)
			}
			if !strings.Contains(err.Error(), tc.ref) {
				t.Errorf("error %q does not name the image", err)
			}
			// Nothing half-unpacked, no record.
			for _, d := range []string{"layers", "tmp", "images"} {
				if entries, _ := os.ReadDir(filepath.Join(r.root, d)); len(entries) != 0 {
					t.Errorf("%s/ holds %d entries after a failed pull", d, len(entries))
				}
			}
		})
	}
	t.Run("file over the size cap", func(t *testing.T) {
		r := newPullRuntime(t, func(c *Config) { c.MaxLayerFileSize = 1024 })
		_, err := r.Pull(context.Background(), reg.ref("app:v1"))
		if !errors.Is(err, ErrOversize) || !strings.Contains(err.Error(), `"f" is 4096 bytes; the limit is 1024`) {
			t.Fatalf("err = %v, want ErrOversize naming the file", err)
		}
		if entries, _ := os.ReadDir(filepath.Join(r.root, "layers")); len(entries) != 0 {
			t.Errorf("layers/ holds %d entries after a refused pull", len(entries))
		}
	})
	t.Run("uncompressed content not matching the diff id", func(t *testing.T) {
		// A config that lies about the diff id: the blob is intact, the
		// layer is not what the image's digest promises.
		cfg, _ := good.ConfigFile()
		cfg = cfg.DeepCopy()
		cfg.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
		lying, err := mutate.ConfigFile(good, cfg)
		if err != nil {
			t.Fatal(err)
		}
		reg.push(t, "lying:v1", lying)
		r := newPullRuntime(t, nil)
		_, err = r.Pull(context.Background(), reg.ref("lying:v1"))
		if !errors.Is(err, regclient.ErrCorrupt) || !strings.Contains(err.Error(), "the image config says") {
			t.Fatalf("err = %v, want ErrCorrupt about the diff id", err)
		}
		if entries, _ := os.ReadDir(filepath.Join(r.root, "layers")); len(entries) != 0 {
			t.Errorf("layers/ holds %d entries after a refused pull", len(entries))
		}
	})
}

// closedPort returns a loopback host:port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestPullProgress(t *testing.T) {
	var ls []v1.Layer
	for i := range 4 {
		ls = append(ls, testLayer(t, map[string]string{fmt.Sprintf("f%d", i): strings.Repeat("y", 10000*(i+1))}, compression.None, types.OCIUncompressedLayer))
	}
	img := testImage(t, goruntime.GOARCH, true, ls...)
	reg := newTestRegistry(t, nil)
	reg.push(t, "prog:v1", img)
	var total int64
	for _, l := range ls {
		s, _ := l.Size()
		total += s
	}

	t.Run("reports until done", func(t *testing.T) {
		r := newPullRuntime(t, func(c *Config) { c.PullProgressInterval = time.Nanosecond })
		var got []PullProgress
		ctx := WithPullProgress(context.Background(), func(p PullProgress) { got = append(got, p) })
		if _, err := r.Pull(ctx, reg.ref("prog:v1")); err != nil {
			t.Fatal(err)
		}
		if len(got) < 5 {
			t.Fatalf("%d reports, want one per layer at least: %v", len(got), got)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Done < got[i-1].Done || got[i].LayersDone < got[i-1].LayersDone {
				t.Fatalf("progress went back: %v then %v", got[i-1], got[i])
			}
		}
		last := got[len(got)-1]
		if last.Done != total || last.Total != total || last.LayersDone != 4 || last.Layers != 4 {
			t.Fatalf("last report %+v, want %d/%d bytes, 4/4 layers", last, total, total)
		}
		if want := fmt.Sprintf("pulling image: %.1f/%.1f MB, 4/4 layers", float64(total)/1e6, float64(total)/1e6); last.String() != want {
			t.Fatalf("message %q, want %q", last.String(), want)
		}
	})
	t.Run("throttled", func(t *testing.T) {
		r := newPullRuntime(t, func(c *Config) { c.PullProgressInterval = time.Hour })
		var got []PullProgress
		ctx := WithPullProgress(context.Background(), func(p PullProgress) { got = append(got, p) })
		if _, err := r.Pull(ctx, reg.ref("prog:v1")); err != nil {
			t.Fatal(err)
		}
		// The first report, then nothing for an hour but the final one.
		if len(got) != 2 || got[0].Done != 0 || got[1].LayersDone != 4 {
			t.Fatalf("reports %v, want the first and the final", got)
		}
	})
}
