package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ImageGCPolicy says when the worker removes images no container uses.
//
// An image is in use while any container created from it exists on the
// node (created, running or exited but not removed); such an image is never
// collected. An unused image is collected once it has not been used (pulled
// or used to create a container) for UnusedAfter. A layer goes when no
// remaining image and no existing container needs it.
type ImageGCPolicy struct {
	// UnusedAfter is how long an image must have gone unused before it is
	// removed; zero turns collection off.
	UnusedAfter time.Duration
	// Interval is how often RunImageGC collects. Default: UnusedAfter/4,
	// between 10s and 10m.
	Interval time.Duration
}

// ParseImageGCPolicy parses the worker flag value: "off" or
// "unused-after=DURATION" (e.g. "unused-after=24h").
func ParseImageGCPolicy(v string) (ImageGCPolicy, error) {
	if v == "off" {
		return ImageGCPolicy{}, nil
	}
	d, ok := strings.CutPrefix(v, "unused-after=")
	if !ok {
		return ImageGCPolicy{}, fmt.Errorf("invalid image GC policy %q: want off or unused-after=DURATION (e.g. unused-after=24h)", v)
	}
	dur, err := time.ParseDuration(d)
	if err != nil || dur <= 0 {
		return ImageGCPolicy{}, fmt.Errorf("invalid image GC policy %q: unused-after wants a positive duration such as 30m or 24h", v)
	}
	return ImageGCPolicy{UnusedAfter: dur}, nil
}

// ImageGCResult says what one collection removed.
type ImageGCResult struct {
	Images, Layers int
	// Skipped: a pull or a container creation was in progress, so nothing
	// was collected this time.
	Skipped bool
}

// imageLease records that a container uses an image; it lives at
// leases/<container-id>.json from Create until the container's directory
// is gone.
type imageLease struct {
	Ref    string   `json:"ref"`
	Layers []string `json:"layers"`
}

func (r *Runtime) leasePath(containerID string) string {
	return filepath.Join(r.root, "leases", containerID+".json")
}

// holdImages keeps the collector away until the returned function is
// called: between pulling an image and recording a lease on it, nothing
// else says the image is in use.
func (r *Runtime) holdImages() func() {
	r.images.gc.RLock()
	return r.images.gc.RUnlock
}

// leaseImage records that container id uses img, and that img was used now.
func (r *Runtime) leaseImage(id string, img Image) error {
	b, err := json.Marshal(imageLease{Ref: img.Ref, Layers: img.Layers})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(r.root, "leases"), 0o711); err != nil {
		return fmt.Errorf("runtime: image lease: %w", err)
	}
	if err := writeFileAtomic(r.leasePath(id), b); err != nil {
		return fmt.Errorf("runtime: image lease: %w", err)
	}
	now := time.Now()
	_ = os.Chtimes(r.imageRecordPath(img.Ref), now, now) // last used; the record may be gone only if the image is
	return nil
}

// CollectImages removes images unused for longer than unusedAfter, and
// every layer (and leftover of an interrupted pull) that no remaining
// image or existing container needs. If a pull or a container creation is
// in progress it does nothing and reports Skipped: the next round will
// collect.
func (r *Runtime) CollectImages(ctx context.Context, unusedAfter time.Duration) (ImageGCResult, error) {
	var res ImageGCResult
	if !r.images.gc.TryLock() {
		res.Skipped = true
		return res, nil
	}
	defer r.images.gc.Unlock()

	keepLayers := map[string]bool{}
	inUse := map[string]bool{} // image refs
	leases, err := os.ReadDir(filepath.Join(r.root, "leases"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("runtime: image gc: %w", err)
	}
	for _, e := range leases {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if _, err := os.Stat(r.containerDir(id)); errors.Is(err, fs.ErrNotExist) {
			_ = os.Remove(filepath.Join(r.root, "leases", e.Name())) // the container was removed
			continue
		}
		var l imageLease
		b, err := os.ReadFile(filepath.Join(r.root, "leases", e.Name()))
		if err == nil {
			err = json.Unmarshal(b, &l)
		}
		if err != nil {
			// Unreadable: keep everything rather than guess.
			return res, fmt.Errorf("runtime: image gc: lease of container %s: %w", id, err)
		}
		inUse[l.Ref] = true
		for _, d := range l.Layers {
			keepLayers[digestHex(d)] = true
		}
	}

	records, err := os.ReadDir(filepath.Join(r.root, "images"))
	if err != nil {
		return res, fmt.Errorf("runtime: image gc: %w", err)
	}
	now := time.Now()
	for _, e := range records {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		path := filepath.Join(r.root, "images", e.Name())
		if strings.HasPrefix(e.Name(), ".tmp-") {
			_ = os.Remove(path)
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		var img Image
		b, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(b, &img)
		}
		if err != nil {
			return res, fmt.Errorf("runtime: image gc: record %s: %w", e.Name(), err)
		}
		if !inUse[img.Ref] && now.Sub(fi.ModTime()) > unusedAfter {
			if err := os.Remove(path); err != nil {
				return res, fmt.Errorf("runtime: image gc: %w", err)
			}
			res.Images++
			r.log.Info("removed unused image", "image", img.Ref, "digest", img.Digest, "unused_for", now.Sub(fi.ModTime()).Round(time.Second))
			continue
		}
		for _, d := range img.Layers {
			keepLayers[digestHex(d)] = true
		}
	}

	layers, err := os.ReadDir(filepath.Join(r.root, "layers"))
	if err != nil {
		return res, fmt.Errorf("runtime: image gc: %w", err)
	}
	for _, e := range layers {
		if keepLayers[e.Name()] {
			continue
		}
		// Renamed out of layers/ first, so that a layer directory is
		// either complete or absent.
		tmp := filepath.Join(r.root, "tmp", "gc-"+e.Name())
		if err := os.Rename(filepath.Join(r.root, "layers", e.Name()), tmp); err != nil {
			return res, fmt.Errorf("runtime: image gc: %w", err)
		}
		if err := os.RemoveAll(tmp); err != nil {
			return res, fmt.Errorf("runtime: image gc: %w", err)
		}
		res.Layers++
	}
	// No pull runs (they hold the lock for reading), so whatever is in
	// tmp/ is left from one that was interrupted.
	if entries, err := os.ReadDir(filepath.Join(r.root, "tmp")); err == nil {
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(r.root, "tmp", e.Name()))
		}
	}
	return res, nil
}

// RunImageGC collects images by policy until ctx ends; with collection off
// it returns at once.
func (r *Runtime) RunImageGC(ctx context.Context, p ImageGCPolicy) {
	if p.UnusedAfter <= 0 {
		return
	}
	every := p.Interval
	if every <= 0 {
		every = min(max(p.UnusedAfter/4, 10*time.Second), 10*time.Minute)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := r.CollectImages(ctx, p.UnusedAfter)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("image garbage collection failed", "err", err)
		case res.Images > 0 || res.Layers > 0:
			r.log.Info("image garbage collection", "images_removed", res.Images, "layers_removed", res.Layers)
		}
	}
}
