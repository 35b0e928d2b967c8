package registry

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// getBlob answers GET and HEAD of /v2/<name>/blobs/<digest>, with Range
// support.
func (r *Registry) getBlob(w http.ResponseWriter, req *http.Request, rt route) error {
	hex, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	f, err := r.store.openBlob(hex)
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", rt.ref)
	h.Set("ETag", `"`+rt.ref+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	// Content never changes, so a zero modtime is fine; ServeContent
	// handles HEAD, Range and Content-Length.
	http.ServeContent(w, req, "", time.Time{}, f)
	return nil
}

// startUpload answers POST /v2/<name>/blobs/uploads/, in its three forms:
// ?mount=<digest>&from=<repo> (mounted if the blob is here, else an upload
// starts), ?digest=<digest> with the whole blob as body (monolithic), and
// plain (starts a session).
func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	q := req.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		if hex, err := parseDigest(mount); err == nil {
			if _, err := r.store.statBlob(hex); err == nil {
				r.log.Debug("blob mounted", "repo", rt.repo, "digest", mount, "from", q.Get("from"))
				blobCreated(w, rt.repo, mount)
				return nil
			}
		}
		// Not mounted: fall through and start a session (202), which
		// clients take to mean "upload it".
	}
	digest := q.Get("digest")
	if digest != "" {
		if _, err := parseDigest(digest); err != nil {
			return err
		}
	}
	u, err := r.uploads.start(rt.repo)
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if digest == "" {
		uploadAccepted(w, http.StatusAccepted, rt.repo, u)
		return nil
	}
	if err := u.appendLocked(req.Body, -1, -1); err != nil {
		r.uploads.close(u)
		return err
	}
	return r.commitLocked(w, rt.repo, u, digest)
}

// uploadStatus answers GET /v2/<name>/blobs/uploads/<id>.
func (r *Registry) uploadStatus(w http.ResponseWriter, rt route) error {
	u, err := r.uploads.lock(rt.repo, rt.ref)
	if err != nil {
		return err
	}
	defer u.mu.Unlock()
	uploadAccepted(w, http.StatusNoContent, rt.repo, u)
	return nil
}

// patchUpload answers PATCH /v2/<name>/blobs/uploads/<id>: one chunk, with
// a Content-Range of "<start>-<end>", or the rest of the blob streamed
// without one.
func (r *Registry) patchUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	u, err := r.uploads.lock(rt.repo, rt.ref)
	if err != nil {
		return err
	}
	defer u.mu.Unlock()
	start, end, err := parseContentRange(req.Header.Get("Content-Range"))
	if err != nil {
		return err
	}
	want := int64(-1)
	if start >= 0 {
		want = end - start + 1
		if req.ContentLength >= 0 && req.ContentLength != want {
			return fmt.Errorf("%w: Content-Range %d-%d but Content-Length %d", ErrUploadInvalid, start, end, req.ContentLength)
		}
	}
	if err := u.appendLocked(req.Body, start, want); err != nil {
		return err
	}
	uploadAccepted(w, http.StatusAccepted, rt.repo, u)
	return nil
}

// finishUpload answers PUT /v2/<name>/blobs/uploads/<id>?digest=<digest>,
// whose body may carry a last chunk.
func (r *Registry) finishUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	digest := req.URL.Query().Get("digest")
	if _, err := parseDigest(digest); err != nil {
		return err
	}
	u, err := r.uploads.lock(rt.repo, rt.ref)
	if err != nil {
		return err
	}
	defer u.mu.Unlock()
	if err := u.appendLocked(req.Body, -1, -1); err != nil {
		return err
	}
	return r.commitLocked(w, rt.repo, u, digest)
}

// commitLocked verifies the finished session u against digest, moves it
// into the blob store and ends the session either way: a blob that does
// not match its digest must be uploaded again.
func (r *Registry) commitLocked(w http.ResponseWriter, repo string, u *upload, digest string) error {
	defer r.uploads.close(u)
	hex, err := parseDigest(digest)
	if err != nil {
		return err
	}
	if got := u.digestLocked(); got != digest {
		return fmt.Errorf("%w: client said %s, content is %s", ErrDigestMismatch, digest, got)
	}
	if err := r.store.commitBlob(u.path, hex); err != nil {
		return err
	}
	r.log.Debug("blob stored", "repo", repo, "digest", digest, "size", u.size)
	blobCreated(w, repo, digest)
	return nil
}

// cancelUpload answers DELETE /v2/<name>/blobs/uploads/<id>.
func (r *Registry) cancelUpload(w http.ResponseWriter, rt route) error {
	u, err := r.uploads.lock(rt.repo, rt.ref)
	if err != nil {
		return err
	}
	defer u.mu.Unlock()
	r.uploads.close(u)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func blobCreated(w http.ResponseWriter, repo, digest string) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+digest)
	h.Set("Docker-Content-Digest", digest)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func uploadAccepted(w http.ResponseWriter, status int, repo string, u *upload) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/uploads/"+u.id)
	h.Set("Docker-Upload-UUID", u.id)
	// Range is inclusive; an empty upload is reported as "0-0" by
	// convention (distribution does the same).
	last := u.size - 1
	if last < 0 {
		last = 0
	}
	h.Set("Range", "0-"+strconv.FormatInt(last, 10))
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
}

// parseContentRange parses a chunk's "<start>-<end>" (inclusive; a
// "bytes " or "bytes=" prefix is tolerated). An empty header is (-1, -1):
// the chunk runs to the end of the body.
func parseContentRange(s string) (start, end int64, err error) {
	if s == "" {
		return -1, -1, nil
	}
	s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(s, "bytes"), "="), " ")
	a, b, ok := strings.Cut(s, "-")
	if ok {
		start, err = strconv.ParseInt(a, 10, 64)
	}
	if ok && err == nil {
		end, err = strconv.ParseInt(b, 10, 64)
	}
	if !ok || err != nil || start < 0 || end < start {
		return 0, 0, fmt.Errorf("%w: Content-Range %q (want <start>-<end>)", ErrRangeInvalid, s)
	}
	return start, end, nil
}
