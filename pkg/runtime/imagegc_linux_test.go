package runtime

import (
	"context"
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestParseImageGCPolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"off", 0, false},
		{"unused-after=24h", 24 * time.Hour, false},
		{"unused-after=90s", 90 * time.Second, false},
		{"unused-after=0s", 0, true},
		{"unused-after=soon", 0, true},
		{"24h", 0, true},
		{"", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParseImageGCPolicy(tc.in)
			if (err != nil) != tc.wantErr || p.UnusedAfter != tc.want {
				t.Fatalf("= %+v, %v; want %v (error %v)", p, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestImageGC(t *testing.T) {
	reg := newTestRegistry(t, nil)
	base := testLayer(t, map[string]string{"etc/os-release": "ID=gc\n"}, compression.GZip, types.OCILayer)
	imgA := testImage(t, goruntime.GOARCH, true, base, testLayer(t, map[string]string{"bin/app": "a"}, compression.GZip, types.OCILayer))
	imgB := testImage(t, goruntime.GOARCH, true, base, testLayer(t, map[string]string{"bin/app": "b"}, compression.GZip, types.OCILayer))
	reg.push(t, "gc:a", imgA)
	reg.push(t, "gc:b", imgB)
	r := newTestRuntime(t)
	ctx := context.Background()
	a, err := r.Pull(ctx, reg.ref("gc:a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Pull(ctx, reg.ref("gc:b"))
	if err != nil {
		t.Fatal(err)
	}
	age := func(img Image, d time.Duration) {
		t.Helper()
		old := time.Now().Add(-d)
		if err := os.Chtimes(r.imageRecordPath(img.Ref), old, old); err != nil {
			t.Fatal(err)
		}
	}
	layerPresent := func(diffID string) bool {
		_, err := os.Stat(r.layerDir(digestHex(diffID)))
		return err == nil
	}

	// A container of image a, created (not started): a is in use.
	c, err := r.Create(ctx, ContainerSpec{ID: "gc-user", Image: a.Ref})
	if err != nil {
		t.Fatal(err)
	}
	age(a, 2*time.Hour)
	age(b, 2*time.Hour)

	hold := r.holdImages()
	if res, err := r.CollectImages(ctx, time.Hour); err != nil || !res.Skipped {
		t.Fatalf("collection during a pull/create = %+v, %v; want skipped", res, err)
	}
	hold()

	res, err := r.CollectImages(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res.Images != 1 || res.Layers != 1 {
		t.Fatalf("removed %d images, %d layers; want b and its own layer", res.Images, res.Layers)
	}
	if _, err := r.LocalImage(a.Ref); err != nil {
		t.Fatalf("image in use was collected: %v", err)
	}
	if _, err := r.LocalImage(b.Ref); err == nil {
		t.Fatal("unused image b survived")
	}
	if !layerPresent(b.Layers[0]) || layerPresent(b.Layers[1]) {
		t.Fatal("want the shared base layer kept and b's own layer removed")
	}

	// Recently used images stay even without containers.
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pull(ctx, b.Ref); err != nil {
		t.Fatal(err)
	}
	res, err = r.CollectImages(ctx, time.Hour)
	if err != nil || res.Images != 1 {
		t.Fatalf("after the container went: %+v, %v; want a (2h unused) removed, b (just pulled) kept", res, err)
	}
	if _, err := os.Stat(r.leasePath("gc-user")); !os.IsNotExist(err) {
		t.Fatalf("lease of a removed container kept: %v", err)
	}
	age(b, 2*time.Hour)
	if _, err := r.CollectImages(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"layers", "images", "tmp"} {
		if entries, _ := os.ReadDir(filepath.Join(r.root, d)); len(entries) != 0 {
			t.Errorf("%s/ holds %d entries after everything went unused", d, len(entries))
		}
	}
	// And a collected image is simply pulled again.
	if _, err := r.Pull(ctx, a.Ref); err != nil {
		t.Fatal(err)
	}
}
