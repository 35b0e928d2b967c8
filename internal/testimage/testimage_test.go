package testimage

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestBuildWriteServe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := Build(ctx, "../../examples/hello")
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != BinaryPath {
		t.Fatalf("config: os %q entrypoint %q", cf.OS, cf.Config.Entrypoint)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	rc.Close()
	for _, n := range []string{"hello", "etc/passwd", "tmp/"} {
		if !names[n] {
			t.Errorf("layer lacks %s (has %v)", n, names)
		}
	}

	t.Run("docker tarball", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "img.tar")
		if err := WriteDockerTarball(p, img, "hello:test"); err != nil {
			t.Fatal(err)
		}
		tag, _ := name.NewTag("hello:test")
		back, err := tarball.ImageFromPath(p, &tag)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := back.Digest(); d != want {
			t.Errorf("digest %s, want %s", d, want)
		}
	})
	t.Run("oci layout tarball", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "oci.tar")
		if err := WriteOCITarball(p, img, "hello:test"); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		found := map[string]bool{}
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			found[h.Name] = true
		}
		for _, n := range []string{"oci-layout", "index.json", "blobs/sha256/" + want.Hex} {
			if !found[n] {
				t.Errorf("layout tar lacks %s", n)
			}
		}
	})
	t.Run("registry", func(t *testing.T) {
		ref := Serve(t, img, "hello:latest")
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		back, err := remote.Image(r, remote.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := back.Digest(); d != want {
			t.Errorf("digest %s, want %s", d, want)
		}
	})
}
