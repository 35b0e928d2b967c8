package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Image is a pulled image: its layers are unpacked under the runtime root
// and its configuration is kept for container creation.
type Image struct {
	// Ref is the reference as given to Pull.
	Ref string `json:"ref"`
	// Digest is the manifest digest ("sha256:…") the reference resolved to.
	Digest string `json:"digest"`
	// Layers are the layers' diff ids, bottom layer first.
	Layers []string `json:"layers"`
	// Config is the part of the image configuration used to run it.
	Config ImageConfig `json:"config"`
}

// ImageConfig is the part of an OCI image configuration the runtime uses.
type ImageConfig struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	User       string   `json:"user,omitempty"`
	// StopSignal and Healthcheck are the image's STOPSIGNAL and
	// HEALTHCHECK; the spec overrides them.
	StopSignal  string        `json:"stop_signal,omitempty"`
	Healthcheck *HealthConfig `json:"healthcheck,omitempty"`
}

// Pull fetches ref for this node's platform (linux/GOARCH) and unpacks every
// layer not yet present. Concurrent pulls of the same ref share one fetch;
// layers are content-addressed by diff id and unpacked once per node, so a
// repeated pull only re-reads the manifest and config. Errors wrap ErrPull
// and name the reference.
func (r *Runtime) Pull(ctx context.Context, ref string) (Image, error) {
	v, err := r.do(ctx, "pull:"+ref, func(ctx context.Context) (any, error) {
		return r.pull(ctx, ref)
	})
	if err != nil {
		if errors.Is(err, ErrPull) {
			return Image{}, err
		}
		return Image{}, fmt.Errorf("%w %q: %w", ErrPull, ref, err)
	}
	return v.(Image), nil
}

// LocalImage returns the record of an image pulled earlier, with all of its
// layers present, or an error wrapping fs.ErrNotExist.
func (r *Runtime) LocalImage(ref string) (Image, error) {
	b, err := os.ReadFile(r.imageRecordPath(ref))
	if err != nil {
		return Image{}, fmt.Errorf("runtime: image %q: %w", ref, err)
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return Image{}, fmt.Errorf("runtime: image record %q: %w", ref, err)
	}
	for _, l := range img.Layers {
		if _, err := os.Stat(r.layerDir(digestHex(l))); err != nil {
			return Image{}, fmt.Errorf("runtime: image %q layer %s: %w", ref, l, err)
		}
	}
	return img, nil
}

// ensureImage returns the local image for ref, pulling it if needed.
func (r *Runtime) ensureImage(ctx context.Context, ref string) (Image, error) {
	if img, err := r.LocalImage(ref); err == nil {
		return img, nil
	}
	return r.Pull(ctx, ref)
}

func (r *Runtime) imageRecordPath(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(r.root, "images", hex.EncodeToString(sum[:])+".json")
}

// AllowInsecure lets the runtime reach registry (host:port) over plain
// HTTP, as for the cluster's built-in registry learned at join.
func (r *Runtime) AllowInsecure(registry string) {
	r.mu.Lock()
	r.insecure[registry] = true
	r.mu.Unlock()
}

func (r *Runtime) parseRef(ref string) (name.Reference, error) {
	n, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	insecure := r.insecure[n.Context().RegistryStr()]
	r.mu.Unlock()
	if insecure {
		return name.ParseReference(ref, name.Insecure)
	}
	return n, nil
}

func (r *Runtime) pull(ctx context.Context, ref string) (Image, error) {
	fail := func(err error) (Image, error) {
		return Image{}, fmt.Errorf("%w %q: %w", ErrPull, ref, err)
	}
	n, err := r.parseRef(ref)
	if err != nil {
		return fail(err)
	}
	log := r.log.With("image", ref)
	log.Info("pulling image")
	img, err := remote.Image(n,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}),
	)
	if err != nil {
		return fail(err)
	}
	digest, err := img.Digest()
	if err != nil {
		return fail(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fail(fmt.Errorf("reading config: %w", err))
	}
	layers, err := img.Layers()
	if err != nil {
		return fail(err)
	}
	rec := Image{
		Ref:    ref,
		Digest: digest.String(),
		Config: ImageConfig{
			Entrypoint:  cfg.Config.Entrypoint,
			Cmd:         cfg.Config.Cmd,
			Env:         cfg.Config.Env,
			WorkingDir:  cfg.Config.WorkingDir,
			User:        cfg.Config.User,
			StopSignal:  cfg.Config.StopSignal,
			Healthcheck: imageHealthcheck(cfg.Config.Healthcheck),
		},
	}
	for _, l := range layers {
		id, err := l.DiffID()
		if err != nil {
			return fail(err)
		}
		if err := r.ensureLayer(ctx, id, l); err != nil {
			return fail(err)
		}
		rec.Layers = append(rec.Layers, id.String())
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fail(err)
	}
	if err := writeFileAtomic(r.imageRecordPath(ref), b); err != nil {
		return fail(err)
	}
	log.Info("pulled image", "digest", rec.Digest, "layers", len(rec.Layers))
	return rec, nil
}

// ensureLayer unpacks l into layers/<diffid-hex> unless already there. The
// layer is unpacked into a temporary directory and renamed into place, so
// a present directory is always complete.
func (r *Runtime) ensureLayer(ctx context.Context, id v1.Hash, l v1.Layer) error {
	dir := r.layerDir(id.Hex)
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	_, err := r.do(ctx, "layer:"+id.Hex, func(ctx context.Context) (any, error) {
		if _, err := os.Stat(dir); err == nil {
			return nil, nil
		}
		tmp, err := os.MkdirTemp(filepath.Join(r.root, "tmp"), id.Hex+"-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp) // no-op after a successful rename
		if err := os.Chmod(tmp, 0o755); err != nil {
			return nil, err
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", id, err)
		}
		defer rc.Close()
		cr := &ctxReader{ctx: ctx, r: rc}
		if err := applyLayer(tmp, cr); err != nil {
			return nil, fmt.Errorf("layer %s: %w", id, err)
		}
		// Drain the padding so digest verification at EOF runs.
		if _, err := io.Copy(io.Discard, cr); err != nil {
			return nil, fmt.Errorf("layer %s: %w", id, err)
		}
		if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) {
			if _, serr := os.Stat(dir); serr != nil {
				return nil, fmt.Errorf("layer %s: %w", id, err)
			}
		}
		r.log.Debug("unpacked layer", "diff_id", id.String())
		return nil, nil
	})
	return err
}

// ctxReader stops a long copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// digestHex strips the algorithm from "sha256:abc…".
func digestHex(d string) string {
	if h, err := v1.NewHash(d); err == nil {
		return h.Hex
	}
	return d
}

func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}
