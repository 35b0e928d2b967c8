package imagetar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/minke-io/minke/internal/registrytest"
	"github.com/minke-io/minke/pkg/ca"
)

func randImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// writeDocker writes a docker-save tarball of images keyed by tag.
func writeDocker(t *testing.T, images map[string]v1.Image) string {
	t.Helper()
	refs := make(map[name.Reference]v1.Image)
	for tag, img := range images {
		r, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		refs[r] = img
	}
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.MultiRefWriteToFile(p, refs); err != nil {
		t.Fatal(err)
	}
	return p
}

type ociEntry struct {
	img         v1.Image
	annotations map[string]string
}

// writeOCI writes an OCI image layout with entries and tars it up.
func writeOCI(t *testing.T, entries []ociEntry) string {
	t.Helper()
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := lp.AppendImage(e.img, layout.WithAnnotations(e.annotations)); err != nil {
			t.Fatal(err)
		}
	}
	files := make(map[string][]byte)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return writeTar(t, files)
}

// writeTar writes files (in sorted order) as a tarball.
func writeTar(t *testing.T, files map[string][]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "layout.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	a, b := randImage(t), randImage(t)
	tests := []struct {
		name string
		file func(t *testing.T) string
		want map[string]v1.Image // recorded name -> image
	}{
		{"docker one image", func(t *testing.T) string {
			return writeDocker(t, map[string]v1.Image{"demo:v1": a})
		}, map[string]v1.Image{"demo:v1": a}},
		{"docker two images", func(t *testing.T) string {
			return writeDocker(t, map[string]v1.Image{"demo:v1": a, "team/web:latest": b})
		}, map[string]v1.Image{"demo:v1": a, "team/web:latest": b}},
		{"oci containerd name", func(t *testing.T) string {
			return writeOCI(t, []ociEntry{{a, map[string]string{annotationContainerdName: "docker.io/library/demo:v1", annotationRefName: "v1"}}})
		}, map[string]v1.Image{"docker.io/library/demo:v1": a}},
		{"oci ref name", func(t *testing.T) string {
			return writeOCI(t, []ociEntry{{a, map[string]string{annotationRefName: "demo:v1"}}, {b, map[string]string{annotationRefName: "demo:v2"}}})
		}, map[string]v1.Image{"demo:v1": a, "demo:v2": b}},
		{"oci unnamed", func(t *testing.T) string {
			return writeOCI(t, []ociEntry{{b, nil}})
		}, map[string]v1.Image{"": b}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Load(tc.file(t))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Load returned %d images, want %d", len(got), len(tc.want))
			}
			for _, l := range got {
				want, ok := tc.want[l.Name]
				if !ok {
					t.Errorf("unexpected name %q", l.Name)
					continue
				}
				if d, w := digestOf(t, l.Image), digestOf(t, want); d != w {
					t.Errorf("%s: digest %s, want %s", l.Name, d, w)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	gz := func(t *testing.T) string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write([]byte("x"))
		_ = zw.Close()
		p := filepath.Join(t.TempDir(), "x.tar.gz")
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		file func(t *testing.T) string
		err  error
		msg  string
	}{
		{"neither format", func(t *testing.T) string {
			return writeTar(t, map[string][]byte{"hello.txt": []byte("hi")})
		}, ErrFormat, "neither a docker-save tarball (no manifest.json) nor an OCI image layout (no oci-layout/index.json)"},
		{"not a tar", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "junk")
			if err := os.WriteFile(p, bytes.Repeat([]byte("junk"), 300), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, ErrFormat, "not a tar archive"},
		{"gzip", gz, ErrFormat, "gzip-compressed"},
		{"escaping path", func(t *testing.T) string {
			return writeTar(t, map[string][]byte{"../evil": []byte("x"), "oci-layout": []byte("{}"), "index.json": []byte("{}")})
		}, ErrUnsafePath, "escapes"},
		{"bad index.json", func(t *testing.T) string {
			return writeTar(t, map[string][]byte{"oci-layout": []byte("{}"), "index.json": []byte("{")})
		}, ErrFormat, "index.json"},
		{"missing blob", func(t *testing.T) string {
			idx := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2}]}`
			return writeTar(t, map[string][]byte{"oci-layout": []byte("{}"), "index.json": []byte(idx)})
		}, ErrFormat, "has no blobs/sha256/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.file(t))
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Load error %v, want %v containing %q", err, tc.err, tc.msg)
			}
		})
	}
}

func TestPushRoundTrip(t *testing.T) {
	srv := registrytest.Start(t, t.TempDir(), slog.New(slog.DiscardHandler))
	reg, host := srv.Registry, srv.Addr
	pusher := registrytest.Transport(srv.Issue(t, "client-1", ca.RoleClient))
	puller := registrytest.Transport(srv.Issue(t, "node-w1", ca.RoleWorker))
	a, b := randImage(t), randImage(t)
	tests := []struct {
		name   string
		file   func(t *testing.T) string
		nameAs string // NAME[:TAG] given to Choose
		repo   string // where it must land
		tag    string
	}{
		{"docker recorded name", func(t *testing.T) string {
			return writeDocker(t, map[string]v1.Image{"demo:latest": a})
		}, "", "demo", "latest"},
		{"docker chosen of two", func(t *testing.T) string {
			return writeDocker(t, map[string]v1.Image{"demo:v1": a, "team/web:v2": b})
		}, "team/web:v2", "team/web", "v2"},
		{"oci renamed", func(t *testing.T) string {
			return writeOCI(t, []ociEntry{{b, map[string]string{annotationContainerdName: "docker.io/library/x:1"}}})
		}, "other:9", "other", "9"},
		{"oci recorded docker hub name", func(t *testing.T) string {
			return writeOCI(t, []ociEntry{{a, map[string]string{annotationContainerdName: "docker.io/library/alpine:3"}}})
		}, "", "alpine", "3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file(t)
			loaded, err := Load(file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			img, as, err := Choose(file, loaded, tc.nameAs)
			if err != nil {
				t.Fatalf("Choose: %v", err)
			}
			d, err := Push(context.Background(), host, pusher, img, as)
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			if got, ok, err := reg.Resolve(tc.repo, tc.tag); err != nil || !ok || got != d {
				t.Errorf("Resolve(%s, %s) = %q %v %v, want %s", tc.repo, tc.tag, got, ok, err, d)
			}
			pulled, err := remote.Image(mustTag(t, host+"/"+tc.repo+":"+tc.tag), remote.WithTransport(puller))
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if pd := digestOf(t, pulled); pd != d || pd != digestOf(t, img) {
				t.Errorf("pulled %s, pushed %s", pd, d)
			}
			layers, err := pulled.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers { // remote layers verify digests as read
				rc, err := l.Compressed()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					t.Errorf("read layer: %v", err)
				}
				rc.Close()
			}
		})
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	r, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseName(t *testing.T) {
	tests := []struct {
		in, repo, tag string
		ok            bool
	}{
		{"demo", "demo", "latest", true},
		{"demo:v1", "demo", "v1", true},
		{"team/web:v1.2", "team/web", "v1.2", true},
		{"docker.io/library/alpine:3", "alpine", "3", true},
		{"library/alpine", "alpine", "latest", true},
		{"docker.io/team/web", "team/web", "latest", true},
		{"localhost:5000/app:1", "app", "1", true},
		{"ghcr.io/o/app", "o/app", "latest", true},
		{"", "", "", false},
		{"Demo:v1", "", "", false},
		{"demo@sha256:" + strings.Repeat("a", 64), "", "", false},
		{"demo:-v", "", "", false},
		{"a..b", "", "", false},
		{"demo:", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			repo, tag, err := ParseName(tc.in)
			if (err == nil) != tc.ok || repo != tc.repo || tag != tc.tag {
				t.Errorf("ParseName = %q %q %v, want %q %q ok=%v", repo, tag, err, tc.repo, tc.tag, tc.ok)
			}
			if err != nil && (!errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "NAME[:TAG]")) {
				t.Errorf("error %v should wrap ErrInvalidName and name the form NAME[:TAG]", err)
			}
		})
	}
}

func TestChoose(t *testing.T) {
	a, b := randImage(t), randImage(t)
	two := []Loaded{{"demo:v1", a}, {"team/web:v2", b}}
	tests := []struct {
		name    string
		loaded  []Loaded
		nameTag string
		want    v1.Image
		as      string
		errMsg  string
	}{
		{"one recorded", []Loaded{{"demo:v1", a}}, "", a, "demo:v1", ""},
		{"one renamed", []Loaded{{"demo:v1", a}}, "x:2", a, "x:2", ""},
		{"one unnamed", []Loaded{{"", a}}, "", nil, "", "has no name"},
		{"two no name", two, "", nil, "", "demo:v1, team/web:v2"},
		{"two chosen", two, "team/web:v2", b, "team/web:v2", ""},
		{"two chosen by full name", two, "docker.io/library/demo:v1", a, "docker.io/library/demo:v1", ""},
		{"two no match", two, "nope:1", nil, "", "found: demo:v1, team/web:v2"},
		{"bad name", two, "Bad", nil, "", "NAME[:TAG]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, as, err := Choose("f.tar", tc.loaded, tc.nameTag)
			if tc.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errMsg) {
					t.Errorf("err %v, want one containing %q", err, tc.errMsg)
				}
				return
			}
			if err != nil || img != tc.want || as != tc.as {
				t.Errorf("Choose = %v %q %v, want %q", img, as, err, tc.as)
			}
		})
	}
}
