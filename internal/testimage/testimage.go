// Package testimage builds small OCI images from Go main packages, and
// serves or saves them, for tests that need a real image to run.
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BinaryPath is where Build puts the compiled program in the image; it is
// also the image's entrypoint.
const BinaryPath = "/hello"

const (
	passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group  = "root:x:0:\nnogroup:x:65534:\n"
)

// Build compiles the Go main package in mainPkgDir as a static binary
// (CGO_ENABLED=0) and packs it into a one-layer linux/GOARCH image with the
// binary at BinaryPath as entrypoint, a minimal /etc/passwd and /etc/group,
// and a world-writable /tmp.
func Build(ctx context.Context, mainPkgDir string) (v1.Image, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := os.MkdirTemp("", "testimage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	bin := filepath.Join(out, "prog")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = mainPkgDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testimage: go build %s: %w\n%s", mainPkgDir, err, b)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	layerTar, err := buildTar(prog)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{BinaryPath}
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cf.Config.WorkingDir = "/"
	return mutate.ConfigFile(img, cf)
}

func buildTar(prog []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	entries := []struct {
		name string
		mode int64
		typ  byte
		data []byte
	}{
		{"etc/", 0o755, tar.TypeDir, nil},
		{"etc/passwd", 0o644, tar.TypeReg, []byte(passwd)},
		{"etc/group", 0o644, tar.TypeReg, []byte(group)},
		{"tmp/", 0o1777, tar.TypeDir, nil},
		{BinaryPath[1:], 0o755, tar.TypeReg, prog},
	}
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typ, Size: int64(len(e.data)), ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteDockerTarball writes img as a `docker save`-style tarball at path,
// tagged with tag (name:tag).
func WriteDockerTarball(path string, img v1.Image, tag string) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("testimage: tag %q: %w", tag, err)
	}
	return tarball.WriteToFile(path, t, img)
}

// WriteOCITarball writes img as an OCI image layout packed in a tar at
// path, with the org.opencontainers.image.ref.name annotation set to tag
// when tag is not empty.
func WriteOCITarball(path string, img v1.Image, tag string) error {
	dir, err := os.MkdirTemp("", "testimage-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return err
	}
	return tarDir(dir, path)
}

func tarDir(dir, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// NewRegistry starts an in-memory OCI registry on 127.0.0.1 and returns its
// host:port; it is shut down when the test ends.
func NewRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// Push pushes img to ref (host:port/repo:tag) over plain HTTP.
func Push(ctx context.Context, ref string, img v1.Image) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return fmt.Errorf("testimage: reference %q: %w", ref, err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("testimage: pushing %s: %w", ref, err)
	}
	return nil
}

// Serve starts a registry (NewRegistry), pushes img as repo (e.g.
// "hello:latest") and returns the full reference to pull.
func Serve(t testing.TB, img v1.Image, repo string) string {
	t.Helper()
	ref := NewRegistry(t) + "/" + repo
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Push(ctx, ref, img); err != nil {
		t.Fatal(err)
	}
	return ref
}
