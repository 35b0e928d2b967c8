// Package registry is the manager's built-in OCI registry: an http.Handler
// speaking the OCI distribution (registry v2) API, with blobs, manifests
// and tags kept on disk so they survive a restart.
//
// It is what `swarmctl image push` pushes to and what workers pull from
// when a service names a pushed image. It implements what
// go-containerregistry's remote.Write / remote.Image / remote.Index use:
// chunked, streamed and monolithic blob uploads, cross-repository mount
// requests (answered by mounting when the blob is present), manifests and
// indexes by tag or digest, and tag listing. Registry itself does not
// authenticate; Guard wraps it with the cluster's certificate checks (the
// manager serves it only that way, over mutual TLS), and Transport is what
// its clients reach it with.
//
// Blobs are global to the registry (any repository can read any blob whose
// digest it knows); manifests and tags belong to a repository.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Registry serves the OCI distribution API from a directory. Only one
// Registry may use a directory at a time. All methods are safe for
// concurrent use.
type Registry struct {
	store   *store
	uploads *uploads
	log     *slog.Logger
	// onTag, if set, runs after a manifest is stored under a tag and before
	// the push is answered; its error fails the push (the manifest stays
	// stored here). Pushes that carry ReplicaHeader skip it.
	onTag func(ctx context.Context, repo, tag, digest string) error
}

// ReplicaHeader marks a push that copies an image from another registry of
// the cluster, so that it is not replicated again.
const ReplicaHeader = "X-Minke-Replica"

// OnTag sets the hook that runs after every tag push (see Registry.onTag).
// Call it before serving.
func (r *Registry) OnTag(fn func(ctx context.Context, repo, tag, digest string) error) { r.onTag = fn }

var _ http.Handler = (*Registry)(nil)

// New opens (creating if needed) a registry stored under dir. Uploads left
// unfinished by a previous process are discarded. A nil logger discards
// logs.
func New(dir string, logger *slog.Logger) (*Registry, error) {
	if dir == "" {
		return nil, errors.New("registry: empty directory")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := newStore(dir)
	if err != nil {
		return nil, err
	}
	return &Registry{
		store:   s,
		uploads: newUploads(s.uploadsDir()),
		log:     logger.With("component", "registry"),
	}, nil
}

// Resolve reports whether the registry holds repo:tag and, if so, the
// digest of its manifest. tag may also be a digest ("sha256:…"), in which
// case ok says whether that manifest was pushed to repo. A repository or
// tag that does not exist is ok=false with a nil error; a malformed name,
// tag or digest is an error wrapping ErrInvalidName, ErrInvalidTag or
// ErrInvalidDigest.
func (r *Registry) Resolve(repo, tag string) (digest string, ok bool, err error) {
	if err := ValidateName(repo); err != nil {
		return "", false, err
	}
	if isDigest(tag) {
		hex, err := parseDigest(tag)
		if err != nil {
			return "", false, err
		}
		if _, err := r.store.manifest(repo, hex); errors.Is(err, ErrManifestUnknown) {
			return "", false, nil
		} else if err != nil {
			return "", false, err
		}
		return tag, true, nil
	}
	if err := ValidateTag(tag); err != nil {
		return "", false, err
	}
	d, err := r.store.resolveTag(repo, tag)
	if errors.Is(err, ErrManifestUnknown) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return d, true, nil
}

// route is a parsed /v2/ request path.
type route struct {
	kind string // "base", "manifest", "blob", "upload", "tags"
	repo string
	ref  string // tag or digest, blob digest, or upload id ("" to start one)
}

// parseRoute splits a /v2/ path. Repository names contain "/", so the
// route is recognised from the end of the path.
func parseRoute(path string) (route, bool) {
	if path == "/v2" || path == "/v2/" {
		return route{kind: "base"}, true
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}, false
	}
	seg := strings.Split(rest, "/")
	n := len(seg)
	join := func(k int) string { return strings.Join(seg[:n-k], "/") }
	switch {
	case n >= 3 && seg[n-2] == "tags" && seg[n-1] == "list":
		return route{kind: "tags", repo: join(2)}, true
	case n >= 4 && seg[n-3] == "blobs" && seg[n-2] == "uploads":
		return route{kind: "upload", repo: join(3), ref: seg[n-1]}, true
	case n >= 3 && seg[n-2] == "blobs" && seg[n-1] == "uploads":
		return route{kind: "upload", repo: join(2)}, true
	case n >= 3 && seg[n-2] == "manifests":
		return route{kind: "manifest", repo: join(2), ref: seg[n-1]}, true
	case n >= 3 && seg[n-2] == "blobs":
		return route{kind: "blob", repo: join(2), ref: seg[n-1]}, true
	}
	return route{}, false
}

// ServeHTTP implements the OCI distribution API under /v2/.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt, ok := parseRoute(req.URL.Path)
	if !ok {
		r.fail(w, req, fmt.Errorf("%w: no such endpoint %s", ErrNotFound, req.URL.Path))
		return
	}
	if rt.kind == "base" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if req.Method != http.MethodHead {
			_, _ = w.Write([]byte("{}"))
		}
		return
	}
	if err := ValidateName(rt.repo); err != nil {
		r.fail(w, req, err)
		return
	}
	var err error
	switch rt.kind + " " + req.Method {
	case "blob GET", "blob HEAD":
		err = r.getBlob(w, req, rt)
	case "upload POST":
		if rt.ref != "" {
			err = fmt.Errorf("%w: POST to an upload session", ErrUnsupported)
			break
		}
		err = r.startUpload(w, req, rt)
	case "upload GET":
		err = r.uploadStatus(w, rt)
	case "upload PATCH":
		err = r.patchUpload(w, req, rt)
	case "upload PUT":
		err = r.finishUpload(w, req, rt)
	case "upload DELETE":
		err = r.cancelUpload(w, rt)
	case "manifest GET", "manifest HEAD":
		err = r.getManifest(w, req, rt)
	case "manifest PUT":
		err = r.putManifest(w, req, rt)
	case "tags GET":
		err = r.listTags(w, req, rt)
	default:
		err = fmt.Errorf("%w: %s %s", ErrUnsupported, req.Method, req.URL.Path)
	}
	if err != nil {
		r.fail(w, req, err)
	}
}

// fail logs err (loudly if it is ours, quietly if it is the client's) and
// answers with the OCI error body.
func (r *Registry) fail(w http.ResponseWriter, req *http.Request, err error) {
	if _, status := codeFor(err); status >= 500 {
		r.log.Error("request failed", "method", req.Method, "path", req.URL.Path, "err", err)
	} else {
		r.log.Debug("request refused", "method", req.Method, "path", req.URL.Path, "err", err)
	}
	writeError(w, req, err)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
