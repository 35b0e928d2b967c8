// Package imagetar loads image tarballs (`docker save` output or OCI image
// layouts) and pushes their images to a registry. It is what
// `swarmctl image push FILE [NAME[:TAG]]` is made of.
package imagetar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Sentinel errors.
var (
	// ErrFormat means the file is not a tarball of a kind Load reads, or
	// its contents are inconsistent.
	ErrFormat = errors.New("imagetar: unsupported or malformed image tarball")
	// ErrUnsafePath means a tar member's name is absolute or climbs out of
	// the archive with "..".
	ErrUnsafePath = errors.New("imagetar: unsafe path in tarball")
	// ErrInvalidName means a NAME[:TAG] is not a valid image reference.
	ErrInvalidName = errors.New("imagetar: invalid image name")
	// ErrChoose means the image to push cannot be chosen: several images
	// and no name given, a name that matches none, or no name at all.
	ErrChoose = errors.New("imagetar: cannot choose image")
)

// Annotations an OCI layout's index.json uses to name its images.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// maxJSON bounds the JSON documents read from a tarball.
const maxJSON = 16 << 20

// Loaded is one image found in a tarball, with the name the tarball
// records for it ("" if none). An image recorded under several names is
// returned once per name.
type Loaded struct {
	Name  string
	Image v1.Image
}

// Load reads a `docker save` tarball (manifest.json at the top) or an OCI
// image-layout tarball (oci-layout and index.json at the top) and returns
// its images with the names recorded in it: docker RepoTags, or the OCI
// annotation io.containerd.image.name, else org.opencontainers.image.ref.name.
// The format is told by content, not file name; manifest.json wins when both
// are present (docker ≥ 25 writes both). For an OCI index entry that is
// itself an index, the linux/GOARCH image is taken.
//
// The tarball is read in place, not extracted; the returned images read
// from path until they are dropped, so it must stay in place meanwhile.
func Load(path string) ([]Loaded, error) {
	ti, err := indexTar(path)
	if err != nil {
		return nil, err
	}
	switch {
	case ti.has("manifest.json"):
		return loadDocker(ti)
	case ti.has("oci-layout") && ti.has("index.json"):
		return loadOCI(ti)
	}
	return nil, fmt.Errorf("%w: %s is neither a docker-save tarball (no manifest.json) nor an OCI image layout (no oci-layout/index.json)", ErrFormat, path)
}

func loadDocker(ti *tarIndex) ([]Loaded, error) {
	raw, err := ti.readAll("manifest.json", maxJSON)
	if err != nil {
		return nil, err
	}
	var m tarball.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: manifest.json: %w", ErrFormat, ti.file, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: %s: manifest.json lists no images", ErrFormat, ti.file)
	}
	opener := func() (io.ReadCloser, error) {
		return openFile(ti.file)
	}
	var out []Loaded
	for i, d := range m {
		// ggcr picks an image in a tarball by one of its tags; a lone
		// image needs none.
		var tag *name.Tag
		if len(m) > 1 {
			if len(d.RepoTags) == 0 {
				return nil, fmt.Errorf("%w: %s: image %d of %d (config %s) has no RepoTags, so it cannot be told apart", ErrFormat, ti.file, i+1, len(m), d.Config)
			}
			t, err := name.NewTag(d.RepoTags[0])
			if err != nil {
				return nil, fmt.Errorf("%w: %s: RepoTag %q: %w", ErrFormat, ti.file, d.RepoTags[0], err)
			}
			tag = &t
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: image %d: %w", ErrFormat, ti.file, i+1, err)
		}
		if len(d.RepoTags) == 0 {
			out = append(out, Loaded{Image: img})
		}
		for _, rt := range d.RepoTags {
			out = append(out, Loaded{Name: rt, Image: img})
		}
	}
	return out, nil
}

func loadOCI(ti *tarIndex) ([]Loaded, error) {
	raw, err := ti.readAll("index.json", maxJSON)
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: index.json: %w", ErrFormat, ti.file, err)
	}
	var out []Loaded
	for _, d := range idx.Manifests {
		nm := d.Annotations[annotationContainerdName]
		if nm == "" {
			nm = d.Annotations[annotationRefName]
		}
		img, err := ociImageFor(ti, d)
		if err != nil {
			return nil, err
		}
		out = append(out, Loaded{Name: nm, Image: img})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s: index.json lists no images", ErrFormat, ti.file)
	}
	return out, nil
}

// ociImageFor turns an index.json entry into an image, choosing the
// linux/GOARCH image when the entry is itself an index.
func ociImageFor(ti *tarIndex, d v1.Descriptor) (v1.Image, error) {
	switch {
	case d.MediaType.IsImage():
		return newOCIImage(ti, d)
	case d.MediaType.IsIndex():
		raw, err := readBlob(ti, d.Digest)
		if err != nil {
			return nil, err
		}
		child, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: index %s: %w", ErrFormat, ti.file, d.Digest, err)
		}
		var seen []string
		for _, c := range child.Manifests {
			if !c.MediaType.IsImage() || c.Platform == nil {
				continue
			}
			if c.Platform.OS == "linux" && c.Platform.Architecture == runtime.GOARCH {
				return newOCIImage(ti, c)
			}
			seen = append(seen, c.Platform.String())
		}
		return nil, fmt.Errorf("%w: %s: index %s has no linux/%s image (has %s)", ErrFormat, ti.file, d.Digest, runtime.GOARCH, strings.Join(seen, ", "))
	}
	return nil, fmt.Errorf("%w: %s: index.json entry %s has unsupported media type %q", ErrFormat, ti.file, d.Digest, d.MediaType)
}

func blobName(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

func readBlob(ti *tarIndex, h v1.Hash) ([]byte, error) {
	return ti.readAll(blobName(h), maxJSON)
}

// ociImage reads an image manifest and its blobs from an OCI layout inside
// a tarball; partial.CompressedToImage derives the rest of v1.Image.
type ociImage struct {
	ti       *tarIndex
	desc     v1.Descriptor
	raw      []byte
	manifest *v1.Manifest
}

var _ partial.CompressedImageCore = (*ociImage)(nil)

func newOCIImage(ti *tarIndex, d v1.Descriptor) (v1.Image, error) {
	raw, err := readBlob(ti, d.Digest)
	if err != nil {
		return nil, err
	}
	if got, _, err := v1.SHA256(bytes.NewReader(raw)); err != nil || got != d.Digest {
		return nil, fmt.Errorf("%w: %s: manifest %s does not match its digest", ErrFormat, ti.file, d.Digest)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: manifest %s: %w", ErrFormat, ti.file, d.Digest, err)
	}
	img, err := partial.CompressedToImage(&ociImage{ti: ti, desc: d, raw: raw, manifest: m})
	if err != nil {
		return nil, fmt.Errorf("imagetar: %w", err)
	}
	return img, nil
}

func (o *ociImage) MediaType() (types.MediaType, error) {
	if o.manifest.MediaType != "" {
		return o.manifest.MediaType, nil
	}
	return o.desc.MediaType, nil
}

func (o *ociImage) RawManifest() ([]byte, error) { return o.raw, nil }

func (o *ociImage) RawConfigFile() ([]byte, error) { return readBlob(o.ti, o.manifest.Config.Digest) }

func (o *ociImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == o.manifest.Config.Digest {
		return &ociBlob{ti: o.ti, desc: o.manifest.Config}, nil
	}
	for _, l := range o.manifest.Layers {
		if l.Digest == h {
			return &ociBlob{ti: o.ti, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s: image has no layer %s", ErrFormat, o.ti.file, h)
}

// ociBlob is a layer (or config) blob read in place from the tarball.
type ociBlob struct {
	ti   *tarIndex
	desc v1.Descriptor
}

func (b *ociBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *ociBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *ociBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *ociBlob) Descriptor() (*v1.Descriptor, error) { return &b.desc, nil }
func (b *ociBlob) Compressed() (io.ReadCloser, error)  { return b.ti.open(blobName(b.desc.Digest)) }
