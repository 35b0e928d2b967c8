package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minke-io/minke/internal/shim"
	"github.com/minke-io/minke/pkg/regclient"
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
	// Size is the sum of the layers' compressed sizes, as pulled.
	Size int64 `json:"size,omitempty"`
}

// Image errors, in addition to the causes in package regclient
// (ErrNotFound, ErrUnauthorized, ErrUnreachable, ErrCorrupt) that a pull
// error also wraps when it shows one.
var (
	// ErrOversize means a layer holds a file larger than the configured
	// limit (Config.MaxLayerFileSize).
	ErrOversize = errors.New("runtime: file in layer too large")
)

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

// UseClusterRegistries makes pulls from the registries at hosts (host:port:
// the managers' built-in registries, as the node's session names them) go
// over tr, the node's mutual-TLS registry transport; the set replaces the
// previous one. Pulls from other registries are unaffected.
func (r *Runtime) UseClusterRegistries(hosts []string, tr http.RoundTripper) {
	set := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		set[h] = true
	}
	r.images.clusterMu.Lock()
	r.images.cluster, r.images.clusterTr = set, tr
	r.images.clusterMu.Unlock()
}

// clusterTransport is the transport for registry if it is one of the
// cluster's, else nil.
func (r *Runtime) clusterTransport(registry string) http.RoundTripper {
	r.images.clusterMu.Lock()
	defer r.images.clusterMu.Unlock()
	if r.images.cluster[registry] {
		return r.images.clusterTr
	}
	return nil
}

// parseRef parses ref; registries listed as insecure are reached over
// plain HTTP, but never the cluster's own.
func (r *Runtime) parseRef(ref string) (name.Reference, error) {
	n, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	reg := n.Context().RegistryStr()
	r.mu.Lock()
	insecure := r.insecure[reg]
	r.mu.Unlock()
	if insecure && r.clusterTransport(reg) == nil {
		return name.ParseReference(ref, name.Insecure)
	}
	return n, nil
}

// digestHex strips the algorithm from "sha256:abc…".
func digestHex(d string) string {
	if h, err := v1.NewHash(d); err == nil {
		return h.Hex
	}
	return d
}

func writeFileAtomic(path string, b []byte) error { return shim.WriteFileAtomic(path, b) }

// imageState is the Runtime's image store configuration and bookkeeping.
type imageState struct {
	keychain      authn.Keychain // nil: authn.DefaultKeychain
	maxFileSize   int64
	progressEvery time.Duration
	hubs          map[string]*progressHub // by flight key; guarded by Runtime.mu

	// cluster are the cluster's registries (host:port), reached over
	// clusterTr (see UseClusterRegistries).
	clusterMu sync.Mutex
	cluster   map[string]bool
	clusterTr http.RoundTripper

	// gc is held for reading while a container is being created (from
	// pulling its image until its lease is on disk), and for writing while
	// images are collected, so that no image is removed between the two.
	gc sync.RWMutex
}

func newImageState(cfg Config) (*imageState, error) {
	st := &imageState{
		maxFileSize:   cfg.MaxLayerFileSize,
		progressEvery: cfg.PullProgressInterval,
		hubs:          map[string]*progressHub{},
	}
	if st.maxFileSize <= 0 {
		st.maxFileSize = DefaultMaxLayerFileSize
	}
	if st.progressEvery <= 0 {
		st.progressEvery = DefaultPullProgressInterval
	}
	kc, err := regclient.Keychain(cfg.RegistryConfig)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	st.keychain = kc
	return st, nil
}
