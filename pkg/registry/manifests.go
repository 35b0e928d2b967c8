package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
)

// maxManifestSize bounds a pushed manifest, as other registries do.
const maxManifestSize = 4 << 20

// Manifest media types the registry accepts.
const (
	mediaOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

func isIndexType(mt string) bool { return mt == mediaOCIIndex || mt == mediaDockerList }

func isManifestType(mt string) bool { return mt == mediaOCIManifest || mt == mediaDockerManifest }

type descriptor struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	Size      int64    `json:"size"`
	URLs      []string `json:"urls,omitempty"`
}

// manifestDoc is the union of an image manifest and an index: enough to
// check what a manifest references.
type manifestDoc struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        *descriptor  `json:"config"`
	Layers        []descriptor `json:"layers"`
	Manifests     []descriptor `json:"manifests"`
}

// getManifest answers GET and HEAD of /v2/<name>/manifests/<tag|digest>.
// The manifest is served as pushed, with the media type it was pushed with.
func (r *Registry) getManifest(w http.ResponseWriter, req *http.Request, rt route) error {
	digest, err := r.resolveRef(rt.repo, rt.ref)
	if err != nil {
		return err
	}
	hex, err := parseDigest(digest)
	if err != nil {
		return err
	}
	mediaType, err := r.store.manifest(rt.repo, hex)
	if err != nil {
		return err
	}
	content, err := os.ReadFile(r.store.blobPath(hex))
	if err != nil {
		return fmt.Errorf("registry: read manifest %s@%s: %w", rt.repo, digest, err)
	}
	h := w.Header()
	h.Set("Content-Type", mediaType)
	h.Set("Content-Length", strconv.Itoa(len(content)))
	h.Set("Docker-Content-Digest", digest)
	h.Set("ETag", `"`+digest+`"`)
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write(content)
	}
	return nil
}

// resolveRef turns a tag or digest reference into a digest.
func (r *Registry) resolveRef(repo, ref string) (string, error) {
	if isDigest(ref) {
		if _, err := parseDigest(ref); err != nil {
			return "", err
		}
		return ref, nil
	}
	if err := ValidateTag(ref); err != nil {
		return "", err
	}
	return r.store.resolveTag(repo, ref)
}

// putManifest answers PUT /v2/<name>/manifests/<tag|digest>. The manifest
// must be a supported type, hash to the digest if pushed by digest, and
// reference only blobs (for an image) or manifests in this repository (for
// an index) that are already here.
func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, rt route) error {
	tag := ""
	if isDigest(rt.ref) {
		if _, err := parseDigest(rt.ref); err != nil {
			return err
		}
	} else {
		if err := ValidateTag(rt.ref); err != nil {
			return err
		}
		tag = rt.ref
	}
	content, err := io.ReadAll(io.LimitReader(req.Body, maxManifestSize+1))
	if err != nil {
		return fmt.Errorf("%w: reading body: %w", ErrManifestInvalid, err)
	}
	if len(content) > maxManifestSize {
		return fmt.Errorf("%w: manifest larger than %d bytes", ErrSizeInvalid, maxManifestSize)
	}
	sum := sha256.Sum256(content)
	hexSum := hex.EncodeToString(sum[:])
	digest := "sha256:" + hexSum
	if tag == "" && digest != rt.ref {
		return fmt.Errorf("%w: pushed as %s, content is %s", ErrDigestMismatch, rt.ref, digest)
	}
	mediaType, err := r.checkManifest(rt.repo, req.Header.Get("Content-Type"), content)
	if err != nil {
		return err
	}
	if err := r.store.putManifest(rt.repo, hexSum, mediaType, content, tag); err != nil {
		return err
	}
	r.log.Info("manifest pushed", "repo", rt.repo, "reference", rt.ref, "digest", digest, "media_type", mediaType)
	if tag != "" && r.onTag != nil && req.Header.Get(ReplicaHeader) == "" {
		if err := r.onTag(req.Context(), rt.repo, tag, digest); err != nil {
			return fmt.Errorf("%w: %w", ErrReplication, err)
		}
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.repo+"/manifests/"+digest)
	h.Set("Docker-Content-Digest", digest)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// checkManifest validates a pushed manifest and returns its media type.
func (r *Registry) checkManifest(repo, contentType string, content []byte) (string, error) {
	var doc manifestDoc
	dec := json.NewDecoder(bytes.NewReader(content))
	if err := dec.Decode(&doc); err != nil {
		return "", fmt.Errorf("%w: not JSON: %w", ErrManifestInvalid, err)
	}
	if doc.SchemaVersion != 2 {
		return "", fmt.Errorf("%w: schemaVersion %d (want 2)", ErrManifestInvalid, doc.SchemaVersion)
	}
	mediaType := ""
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return "", fmt.Errorf("%w: Content-Type %q: %w", ErrManifestInvalid, contentType, err)
		}
		mediaType = mt
	}
	switch {
	case mediaType == "" || mediaType == "application/json" || mediaType == "application/octet-stream":
		mediaType = doc.MediaType
	case doc.MediaType != "" && doc.MediaType != mediaType:
		return "", fmt.Errorf("%w: Content-Type %s but mediaType field %s", ErrManifestInvalid, mediaType, doc.MediaType)
	}
	if mediaType == "" { // OCI makes the field optional; tell by shape
		mediaType = mediaOCIManifest
		if doc.Manifests != nil {
			mediaType = mediaOCIIndex
		}
	}
	switch {
	case isManifestType(mediaType):
		if doc.Config == nil {
			return "", fmt.Errorf("%w: image manifest without config", ErrManifestInvalid)
		}
		refs := append([]descriptor{*doc.Config}, doc.Layers...)
		for _, d := range refs {
			if err := r.checkBlobRef(d); err != nil {
				return "", err
			}
		}
	case isIndexType(mediaType):
		for _, d := range doc.Manifests {
			hex, err := parseDigest(d.Digest)
			if err != nil {
				return "", fmt.Errorf("%w: child manifest: %w", ErrManifestInvalid, err)
			}
			if _, err := r.store.manifest(repo, hex); errors.Is(err, ErrManifestUnknown) {
				return "", fmt.Errorf("%w: child manifest %s is not in %s", ErrManifestBlobUnknown, d.Digest, repo)
			} else if err != nil {
				return "", err
			}
		}
	default:
		return "", fmt.Errorf("%w: unsupported media type %q (want OCI or Docker v2 image manifest or index)", ErrManifestInvalid, mediaType)
	}
	return mediaType, nil
}

// checkBlobRef checks that a manifest's config or layer is stored with the
// size the manifest claims. Non-distributable layers (with urls) are not
// expected to be here.
func (r *Registry) checkBlobRef(d descriptor) error {
	if len(d.URLs) > 0 {
		return nil
	}
	hex, err := parseDigest(d.Digest)
	if err != nil {
		return fmt.Errorf("%w: referenced blob: %w", ErrManifestInvalid, err)
	}
	size, err := r.store.statBlob(hex)
	if errors.Is(err, ErrBlobUnknown) {
		return fmt.Errorf("%w: %s", ErrManifestBlobUnknown, d.Digest)
	}
	if err != nil {
		return err
	}
	if size != d.Size {
		return fmt.Errorf("%w: blob %s has %d bytes, manifest says %d", ErrManifestInvalid, d.Digest, size, d.Size)
	}
	return nil
}

type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// listTags answers GET /v2/<name>/tags/list, paginated by ?n=&last=.
func (r *Registry) listTags(w http.ResponseWriter, req *http.Request, rt route) error {
	tags, err := r.store.listTags(rt.repo)
	if err != nil {
		return err
	}
	q := req.URL.Query()
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(tags, last)
		if i < len(tags) && tags[i] == last {
			i++
		}
		tags = tags[i:]
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: n=%q is not a count", ErrPaginationInvalid, ns)
		}
		if n < len(tags) {
			tags = tags[:n]
			if n > 0 {
				next := url.Values{"n": {ns}, "last": {tags[n-1]}}
				w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, rt.repo, next.Encode()))
			}
		}
	}
	body, err := json.Marshal(tagList{Name: rt.repo, Tags: tags})
	if err != nil {
		return fmt.Errorf("registry: encode tags: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}
