package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// serve starts a Registry on dir behind an httptest server on 127.0.0.1
// and returns it with the server's host:port.
func serve(t *testing.T, dir string) (*Registry, string) {
	t.Helper()
	reg, err := New(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return reg, strings.TrimPrefix(srv.URL, "http://")
}

func ref(t *testing.T, host, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatalf("ParseReference(%q): %v", s, err)
	}
	return r
}

func mustDigest(t *testing.T, d interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	return h.String()
}

// readImage reads every blob of img; remote layers verify their digest
// while being read, so a corrupt blob fails here.
func readImage(t *testing.T, img v1.Image) {
	t.Helper()
	if _, err := img.ConfigFile(); err != nil {
		t.Fatalf("ConfigFile: %v", err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatalf("Layers: %v", err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("Compressed: %v", err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("read layer: %v", err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("close layer: %v", err)
		}
	}
}

func TestPushPull(t *testing.T) {
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(512, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	imgDigest, idxDigest := mustDigest(t, img), mustDigest(t, idx)
	tests := []struct {
		name      string
		ref       string // pushed and pulled as
		index     bool
		mediaType types.MediaType
		digest    string
	}{
		{"image by tag", "demo:latest", false, types.DockerManifestSchema2, imgDigest},
		{"image in nested repo", "team/app/web:v1.2", false, types.DockerManifestSchema2, imgDigest},
		{"image by digest", "bydigest@" + imgDigest, false, types.DockerManifestSchema2, imgDigest},
		{"index by tag", "multi:latest", true, types.OCIImageIndex, idxDigest},
	}
	_, host := serve(t, t.TempDir())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ref(t, host, tc.ref)
			if tc.index {
				if err := remote.WriteIndex(r, idx); err != nil {
					t.Fatalf("WriteIndex: %v", err)
				}
			} else if err := remote.Write(r, img); err != nil {
				t.Fatalf("Write: %v", err)
			}
			desc, err := remote.Head(r)
			if err != nil {
				t.Fatalf("Head: %v", err)
			}
			if desc.Digest.String() != tc.digest || desc.MediaType != tc.mediaType {
				t.Errorf("Head = %s %s, want %s %s", desc.Digest, desc.MediaType, tc.digest, tc.mediaType)
			}
			if !tc.index {
				got, err := remote.Image(r)
				if err != nil {
					t.Fatalf("Image: %v", err)
				}
				if d := mustDigest(t, got); d != tc.digest {
					t.Errorf("pulled digest %s, want %s", d, tc.digest)
				}
				readImage(t, got)
				return
			}
			got, err := remote.Index(r)
			if err != nil {
				t.Fatalf("Index: %v", err)
			}
			if d := mustDigest(t, got); d != tc.digest {
				t.Errorf("pulled digest %s, want %s", d, tc.digest)
			}
			im, err := got.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range im.Manifests {
				child, err := got.Image(m.Digest)
				if err != nil {
					t.Fatalf("child %s: %v", m.Digest, err)
				}
				readImage(t, child)
			}
		})
	}
}

func TestRestartKeepsContent(t *testing.T) {
	dir := t.TempDir()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(256, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, host := serve(t, dir)
	if err := remote.Write(ref(t, host, "demo:latest"), img); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := remote.WriteIndex(ref(t, host, "demo:multi"), idx); err != nil {
		t.Fatalf("WriteIndex: %v", err)
	}
	// Leave an upload unfinished; the restart must discard it.
	resp := do(t, http.MethodPost, "http://"+host+"/v2/demo/blobs/uploads/", nil, nil)
	loc := resp.Header.Get("Location")

	reg2, host2 := serve(t, dir)
	got, err := remote.Image(ref(t, host2, "demo:latest"))
	if err != nil {
		t.Fatalf("Image after restart: %v", err)
	}
	if d, want := mustDigest(t, got), mustDigest(t, img); d != want {
		t.Errorf("digest after restart %s, want %s", d, want)
	}
	readImage(t, got)
	gotIdx, err := remote.Index(ref(t, host2, "demo:multi"))
	if err != nil {
		t.Fatalf("Index after restart: %v", err)
	}
	if d, want := mustDigest(t, gotIdx), mustDigest(t, idx); d != want {
		t.Errorf("index digest after restart %s, want %s", d, want)
	}
	d, ok, err := reg2.Resolve("demo", "latest")
	if err != nil || !ok || d != mustDigest(t, img) {
		t.Errorf("Resolve after restart = %q %v %v", d, ok, err)
	}
	resp = do(t, http.MethodGet, "http://"+host2+loc, nil, nil)
	wantError(t, resp, http.StatusNotFound, codeBlobUploadUnknown)
	if ents, _ := os.ReadDir(filepath.Join(dir, "uploads")); len(ents) != 0 {
		t.Errorf("uploads/ after restart holds %d entries, want 0", len(ents))
	}
}

func TestConcurrentPushes(t *testing.T) {
	img, err := random.Image(4096, 4)
	if err != nil {
		t.Fatal(err)
	}
	_, host := serve(t, t.TempDir())
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tag := []string{"latest", "other"}[i%2]
			if err := remote.Write(ref(t, host, "demo:"+tag), img); err != nil {
				errs <- fmt.Errorf("push %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, tag := range []string{"latest", "other"} {
		got, err := remote.Image(ref(t, host, "demo:"+tag))
		if err != nil {
			t.Fatalf("Image(%s): %v", tag, err)
		}
		if d, want := mustDigest(t, got), mustDigest(t, img); d != want {
			t.Errorf("%s digest %s, want %s", tag, d, want)
		}
		readImage(t, got)
	}
}

func TestResolve(t *testing.T) {
	reg, host := serve(t, t.TempDir())
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, host, "demo:latest"), img); err != nil {
		t.Fatal(err)
	}
	dg := mustDigest(t, img)
	other := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		repo, tag string
		want      string
		ok        bool
		err       error
	}{
		{"demo", "latest", dg, true, nil},
		{"demo", dg, dg, true, nil},
		{"demo", "v2", "", false, nil},
		{"demo", other, "", false, nil},
		{"nothere", "latest", "", false, nil},
		{"Demo", "latest", "", false, ErrInvalidName},
		{"demo", "-bad", "", false, ErrInvalidTag},
		{"demo", "sha256:xyz", "", false, ErrInvalidDigest},
	}
	for _, tc := range tests {
		t.Run(tc.repo+":"+tc.tag, func(t *testing.T) {
			got, ok, err := reg.Resolve(tc.repo, tc.tag)
			if got != tc.want || ok != tc.ok || !errors.Is(err, tc.err) {
				t.Errorf("Resolve = %q %v %v, want %q %v %v", got, ok, err, tc.want, tc.ok, tc.err)
			}
		})
	}
}

func do(t *testing.T, method, url string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// wantError checks status and the OCI error body's first code.
func wantError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d", resp.StatusCode, status)
	}
	if resp.Request.Method == http.MethodHead {
		return
	}
	var body apiErrors
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode error body: %v", err)
	}
	if len(body.Errors) == 0 || body.Errors[0].Code != code {
		t.Errorf("errors = %+v, want code %s", body.Errors, code)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestErrors(t *testing.T) {
	_, host := serve(t, t.TempDir())
	base := "http://" + host
	data := []byte("hello, blob")
	missing := "sha256:" + strings.Repeat("a", 64)
	// A manifest whose config blob was never pushed.
	orphan := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":2},"layers":[]}`, mediaOCIManifest, missing))
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    map[string]string
		status int
		code   string
	}{
		{"unknown blob", http.MethodGet, "/v2/demo/blobs/" + missing, nil, nil, http.StatusNotFound, codeBlobUnknown},
		{"unknown blob HEAD", http.MethodHead, "/v2/demo/blobs/" + missing, nil, nil, http.StatusNotFound, ""},
		{"unknown manifest tag", http.MethodGet, "/v2/demo/manifests/nope", nil, nil, http.StatusNotFound, codeManifestUnknown},
		{"unknown manifest digest", http.MethodGet, "/v2/demo/manifests/" + missing, nil, nil, http.StatusNotFound, codeManifestUnknown},
		{"bad digest", http.MethodGet, "/v2/demo/blobs/sha256:abc", nil, nil, http.StatusBadRequest, codeDigestInvalid},
		{"uppercase name", http.MethodGet, "/v2/Demo/manifests/latest", nil, nil, http.StatusBadRequest, codeNameInvalid},
		{"double separator name", http.MethodPost, "/v2/a--b..c/blobs/uploads/", nil, nil, http.StatusBadRequest, codeNameInvalid},
		{"empty component", http.MethodGet, "/v2/a//b/tags/list", nil, nil, http.StatusBadRequest, codeNameInvalid},
		{"bad tag", http.MethodPut, "/v2/demo/manifests/-x", orphan, nil, http.StatusBadRequest, codeTagInvalid},
		{"monolithic wrong digest", http.MethodPost, "/v2/demo/blobs/uploads/?digest=" + missing, data, nil, http.StatusBadRequest, codeDigestInvalid},
		{"unknown upload", http.MethodPatch, "/v2/demo/blobs/uploads/deadbeef", data, nil, http.StatusNotFound, codeBlobUploadUnknown},
		{"manifest blob unknown", http.MethodPut, "/v2/demo/manifests/latest", orphan, map[string]string{"Content-Type": mediaOCIManifest}, http.StatusBadRequest, codeManifestBlobUnknown},
		{"manifest digest mismatch", http.MethodPut, "/v2/demo/manifests/" + missing, orphan, map[string]string{"Content-Type": mediaOCIManifest}, http.StatusBadRequest, codeDigestInvalid},
		{"manifest not json", http.MethodPut, "/v2/demo/manifests/latest", []byte("{"), nil, http.StatusBadRequest, codeManifestInvalid},
		{"manifest type conflict", http.MethodPut, "/v2/demo/manifests/latest", orphan, map[string]string{"Content-Type": mediaDockerList}, http.StatusBadRequest, codeManifestInvalid},
		{"tags of unknown repo", http.MethodGet, "/v2/nothere/tags/list", nil, nil, http.StatusNotFound, codeNameUnknown},
		{"delete manifest", http.MethodDelete, "/v2/demo/manifests/latest", nil, nil, http.StatusMethodNotAllowed, codeUnsupported},
		{"referrers", http.MethodGet, "/v2/demo/referrers/" + missing, nil, nil, http.StatusNotFound, codeUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, tc.method, base+tc.path, tc.body, tc.hdr)
			wantError(t, resp, tc.status, tc.code)
		})
	}
}

// TestUploadFlows drives the upload API by hand: the forms remote.Write
// does not use, and a wrong digest on the final PUT.
func TestUploadFlows(t *testing.T) {
	data := []byte("0123456789abcdef")
	dg := sha(data)
	tests := []struct {
		name   string
		chunks []string // Content-Range of each PATCH; "" streams the rest
		sizes  []int
		final  string // digest on the PUT
		status int    // of the PUT
	}{
		{"two ranged chunks", []string{"0-5", "6-15"}, []int{6, 10}, dg, http.StatusCreated},
		{"streamed", []string{""}, []int{16}, dg, http.StatusCreated},
		{"chunk then last bytes in PUT", []string{"0-9"}, []int{10}, dg, http.StatusCreated},
		{"wrong digest", []string{""}, []int{16}, sha([]byte("other")), http.StatusBadRequest},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, host := serve(t, dir)
			base := "http://" + host
			repo := fmt.Sprintf("up%d", i)
			resp := do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST status %d", resp.StatusCode)
			}
			loc := resp.Header.Get("Location")
			off := 0
			for j, cr := range tc.chunks {
				hdr := map[string]string{"Content-Type": "application/octet-stream"}
				if cr != "" {
					hdr["Content-Range"] = cr
				}
				resp := do(t, http.MethodPatch, base+loc, data[off:off+tc.sizes[j]], hdr)
				off += tc.sizes[j]
				if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != fmt.Sprintf("0-%d", off-1) {
					t.Fatalf("PATCH %d: status %d Range %q", j, resp.StatusCode, resp.Header.Get("Range"))
				}
				loc = resp.Header.Get("Location")
			}
			resp = do(t, http.MethodPut, base+loc+"?digest="+tc.final, data[off:], nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("PUT status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == http.StatusCreated {
				resp = do(t, http.MethodGet, base+"/v2/"+repo+"/blobs/"+dg, nil, nil)
				got, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) || resp.Header.Get("Docker-Content-Digest") != dg {
					t.Errorf("GET blob: %d %q %q", resp.StatusCode, got, resp.Header.Get("Docker-Content-Digest"))
				}
			} else {
				resp = do(t, http.MethodHead, base+"/v2/"+repo+"/blobs/"+tc.final, nil, nil)
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("refused blob is stored: HEAD %d", resp.StatusCode)
				}
			}
			// Finished or refused, the session is gone, and so is its file.
			wantError(t, do(t, http.MethodGet, base+loc, nil, nil), http.StatusNotFound, codeBlobUploadUnknown)
			if ents, _ := os.ReadDir(filepath.Join(dir, "uploads")); len(ents) != 0 {
				t.Errorf("uploads/ holds %d entries after the upload ended", len(ents))
			}
		})
	}
}

func TestRangeErrors(t *testing.T) {
	_, host := serve(t, t.TempDir())
	base := "http://" + host
	resp := do(t, http.MethodPost, base+"/v2/demo/blobs/uploads/", nil, nil)
	loc := resp.Header.Get("Location")
	do(t, http.MethodPatch, base+loc, []byte("abcd"), map[string]string{"Content-Range": "0-3"})
	// A chunk that does not continue at byte 4 is refused, and the upload
	// keeps its 4 bytes.
	resp = do(t, http.MethodPatch, base+loc, []byte("zz"), map[string]string{"Content-Range": "2-3"})
	wantError(t, resp, http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid)
	resp = do(t, http.MethodGet, base+loc, nil, nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Range") != "0-3" {
		t.Errorf("status after refused chunk: %d Range %q", resp.StatusCode, resp.Header.Get("Range"))
	}
	resp = do(t, http.MethodPut, base+loc+"?digest="+sha([]byte("abcdef")), []byte("ef"), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("finish after refused chunk: %d", resp.StatusCode)
	}
}

func TestMonolithicAndMount(t *testing.T) {
	_, host := serve(t, t.TempDir())
	base := "http://" + host
	data := []byte("monolithic")
	dg := sha(data)
	resp := do(t, http.MethodPost, base+"/v2/a/blobs/uploads/?digest="+dg, data, nil)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != dg {
		t.Fatalf("monolithic POST: %d", resp.StatusCode)
	}
	resp = do(t, http.MethodPost, base+"/v2/b/blobs/uploads/?mount="+dg+"&from=a", nil, nil)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") != "/v2/b/blobs/"+dg {
		t.Errorf("mount of present blob: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = do(t, http.MethodPost, base+"/v2/b/blobs/uploads/?mount="+sha([]byte("x"))+"&from=a", nil, nil)
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(resp.Header.Get("Location"), "/v2/b/blobs/uploads/") {
		t.Errorf("mount of absent blob: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = do(t, http.MethodGet, base+"/v2/", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("GET /v2/: %d", resp.StatusCode)
	}
}

func TestTagsList(t *testing.T) {
	_, host := serve(t, t.TempDir())
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"b", "a", "c"} {
		if err := remote.Write(ref(t, host, "demo:"+tag), img); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		query string
		want  []string
		next  bool
	}{
		{"", []string{"a", "b", "c"}, false},
		{"?n=2", []string{"a", "b"}, true},
		{"?n=2&last=b", []string{"c"}, false},
		{"?last=a", []string{"b", "c"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			resp := do(t, http.MethodGet, "http://"+host+"/v2/demo/tags/list"+tc.query, nil, nil)
			var got tagList
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got.Name != "demo" || strings.Join(got.Tags, ",") != strings.Join(tc.want, ",") {
				t.Errorf("tags = %+v, want %v", got, tc.want)
			}
			if hasNext := resp.Header.Get("Link") != ""; hasNext != tc.next {
				t.Errorf("Link %q, want next=%v", resp.Header.Get("Link"), tc.next)
			}
		})
	}
	// remote.List follows the same API.
	tags, err := remote.List(ref(t, host, "demo").Context())
	if err != nil || strings.Join(tags, ",") != "a,b,c" {
		t.Errorf("remote.List = %v %v", tags, err)
	}
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path string
		want route
		ok   bool
	}{
		{"/v2/", route{kind: "base"}, true},
		{"/v2", route{kind: "base"}, true},
		{"/v2/a/b/manifests/latest", route{"manifest", "a/b", "latest"}, true},
		{"/v2/a/blobs/sha256:x", route{"blob", "a", "sha256:x"}, true},
		{"/v2/a/blobs/uploads/", route{"upload", "a", ""}, true},
		{"/v2/a/blobs/uploads", route{"upload", "a", ""}, true},
		{"/v2/a/blobs/uploads/id1", route{"upload", "a", "id1"}, true},
		{"/v2/blobs/uploads/blobs/sha256:x", route{"blob", "blobs/uploads", "sha256:x"}, true},
		{"/v2/manifests/manifests/t", route{"manifest", "manifests", "t"}, true},
		{"/v2/a/tags/list", route{"tags", "a", ""}, true},
		{"/v2/a/referrers/sha256:x", route{}, false},
		{"/v3/a/tags/list", route{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got, ok := parseRoute(tc.path)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseRoute = %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestUploadExpiry(t *testing.T) {
	dir := t.TempDir()
	us := newUploads(dir)
	now := time.Unix(1000, 0)
	us.now = func() time.Time { return now }
	old, err := us.start("demo")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(uploadTTL + time.Second)
	if _, err := us.start("demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := us.lock("demo", old.id); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("expired upload: lock err %v, want ErrUploadUnknown", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d upload files, want 1", len(ents))
	}
}
