package runtime

import (
	"bufio"
	"compress/gzip"
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
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/zstd"

	"github.com/minke-io/minke/pkg/regclient"
)

// Pull fetches ref for this node's platform and unpacks every layer not yet
// present.
//
// ref may name a single image (docker schema2 or OCI manifest) or a
// multi-arch index, from which the manifest for linux/GOARCH is picked. Credentials come from the keychain
// (Config.RegistryConfig); go-containerregistry answers basic and bearer
// token challenges. Layers may be gzip, zstd or uncompressed tars.
//
// Concurrent pulls of the same ref share one fetch; layers are
// content-addressed by diff id and unpacked once per node, so images
// sharing a base share its directories, and a repeated pull only re-reads
// the manifest and config. Every blob is checked against its digest and
// every layer against its diff id; on a mismatch the pull fails and the
// half-unpacked layer is removed.
//
// While the pull runs, the callback attached to ctx with WithPullProgress
// (if any) is told the progress. Errors wrap ErrPull, name the reference,
// and wrap the cause from package regclient when there is one.
func (r *Runtime) Pull(ctx context.Context, ref string) (Image, error) {
	key := "pull:" + ref
	hub := r.progressHub(key)
	defer r.releaseProgressHub(key)
	if fn := pullProgressFrom(ctx); fn != nil {
		defer hub.subscribe(fn)()
	}
	v, err := r.do(ctx, key, func(ctx context.Context) (any, error) {
		return r.pull(ctx, ref, hub)
	})
	if err != nil {
		if errors.Is(err, ErrPull) {
			return Image{}, err
		}
		return Image{}, fmt.Errorf("%w %q: %w", ErrPull, ref, err)
	}
	return v.(Image), nil
}

// platform is the platform this node pulls images for. No variant is asked
// for: an index entry without one (common for arm64) must still match, and
// the first entry of the architecture is taken, as docker does.
func platform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}
}

func (r *Runtime) keychain() authn.Keychain {
	if r.images.keychain != nil {
		return r.images.keychain
	}
	return authn.DefaultKeychain
}

func (r *Runtime) pull(ctx context.Context, ref string, hub *progressHub) (Image, error) {
	// Layers written before the record would look unused to the collector.
	defer r.holdImages()()
	fail := func(err error) (Image, error) {
		return Image{}, fmt.Errorf("%w %q: %w", ErrPull, ref, regclient.Classify(err))
	}
	n, err := r.parseRef(ref)
	if err != nil {
		return fail(err)
	}
	log := r.log.With("image", ref)
	log.Info("pulling image")
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(r.keychain()),
		remote.WithPlatform(platform()),
	}
	if tr := r.clusterTransport(n.Context().RegistryStr()); tr != nil {
		opts = append(opts, remote.WithTransport(tr))
	}
	img, err := remote.Image(n, opts...)
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
	if cfg.OS != "" && cfg.OS != "linux" {
		return fail(fmt.Errorf("%w: the image is for %s/%s, this node runs linux/%s", regclient.ErrNotFound, cfg.OS, cfg.Architecture, goruntime.GOARCH))
	}
	layers, err := img.Layers()
	if err != nil {
		return fail(err)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return fail(fmt.Errorf("%w: the manifest lists %d layers, the config %d", regclient.ErrCorrupt, len(layers), len(cfg.RootFS.DiffIDs)))
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
	prog := PullProgress{Ref: ref, Layers: len(layers)}
	sizes := make([]int64, len(layers))
	for i, l := range layers {
		if sizes[i], err = l.Size(); err != nil {
			return fail(err)
		}
		prog.Total += sizes[i]
	}
	rec.Size = prog.Total
	hub.publish(prog, false)
	for i, l := range layers {
		// The config's diff ids are what the image's digest covers; the
		// unpacked tar is checked against them.
		id := cfg.RootFS.DiffIDs[i]
		base, cur := prog, prog
		var curMu sync.Mutex // the layer's unpack may outlive this pull when it is cancelled
		err := r.ensureLayer(ctx, id, l, func(n int64) {
			curMu.Lock()
			cur.Done = base.Done + n
			p := cur
			curMu.Unlock()
			hub.publish(p, false)
		})
		if err != nil {
			return fail(err)
		}
		prog.Done = base.Done + sizes[i]
		prog.LayersDone++
		hub.publish(prog, false)
		rec.Layers = append(rec.Layers, id.String())
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fail(err)
	}
	if err := writeFileAtomic(r.imageRecordPath(ref), b); err != nil {
		return fail(err)
	}
	hub.publish(prog, true)
	log.Info("pulled image", "digest", rec.Digest, "layers", len(rec.Layers), "bytes", rec.Size)
	return rec, nil
}

// ensureLayer unpacks l into layers/<diffid-hex> unless already there. The
// layer is unpacked into a temporary directory and renamed into place only
// once its blob digest and diff id are verified, so a present directory is
// always complete and correct. read is told how many compressed bytes have
// been read so far.
func (r *Runtime) ensureLayer(ctx context.Context, id v1.Hash, l v1.Layer, read func(int64)) error {
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
		if err := r.unpackLayer(ctx, tmp, id, l, read); err != nil {
			return nil, err
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

// unpackLayer streams the compressed blob of l through decompression into
// applyLayer, checking the blob's digest (go-containerregistry verifies it
// at EOF) and the uncompressed stream's sha256 against id.
func (r *Runtime) unpackLayer(ctx context.Context, dst string, id v1.Hash, l v1.Layer, read func(int64)) error {
	digest, _ := l.Digest()
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", digest, err)
	}
	defer rc.Close()
	blob := &countingReader{r: &ctxReader{ctx: ctx, r: rc}, report: read}
	// A broken stream (bad gzip, a tar that ends early) is most often a
	// corrupt blob: when unpacking fails, read the rest of the blob so the
	// digest check can say so.
	corrupt := func(err error) error {
		if ctx.Err() == nil {
			if _, derr := io.Copy(io.Discard, blob); derr != nil {
				if c := regclient.Classify(derr); errors.Is(c, regclient.ErrCorrupt) {
					return fmt.Errorf("layer %s: %w (unpacking had failed with: %v)", digest, c, err)
				}
			}
		}
		return fmt.Errorf("layer %s: %w", digest, err)
	}
	ur, closeU, err := decompress(blob)
	if err != nil {
		return corrupt(err)
	}
	defer closeU()
	h := sha256.New()
	tee := io.TeeReader(ur, h)
	if err := applyLayer(dst, tee, unpackLimits{MaxFileSize: r.images.maxFileSize}); err != nil {
		return corrupt(err)
	}
	// Read what follows the tar's end (padding, trailing data) so both
	// checks cover every byte.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return corrupt(err)
	}
	if _, err := io.Copy(io.Discard, blob); err != nil {
		return fmt.Errorf("layer %s: %w", digest, regclient.Classify(err))
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); id.Algorithm == "sha256" && got != id.String() {
		return fmt.Errorf("layer %s: %w: uncompressed content is %s, the image config says %s",
			digest, regclient.ErrCorrupt, got, id)
	}
	return nil
}

// decompress detects gzip and zstd by their magic numbers (media types are
// not reliable: "compressed" layers are sometimes plain tars) and returns
// the uncompressed stream.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %w", regclient.ErrCorrupt, err)
		}
		return zr, func() { zr.Close() }, nil
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: zstd: %w", regclient.ErrCorrupt, err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// countingReader reports the running total of bytes read.
type countingReader struct {
	r      io.Reader
	n      int64
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		if c.report != nil {
			c.report(c.n)
		}
	}
	return n, err
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
