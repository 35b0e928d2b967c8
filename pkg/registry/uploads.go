package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// uploadTTL is how long an upload may sit idle before the next new upload
// throws it away.
const uploadTTL = time.Hour

// upload is one blob upload session. Its bytes so far live in a file under
// uploads/; their sha256 is kept running so finishing does not re-read.
type upload struct {
	mu      sync.Mutex // serialises chunks; held across a whole request body
	id      string
	repo    string
	path    string
	size    int64
	hash    hash.Hash
	touched time.Time
	closed  bool // finished or cancelled: every later use is ErrUploadUnknown
}

// uploads tracks sessions in memory. Sessions do not survive a restart;
// newStore clears their files.
type uploads struct {
	dir string
	now func() time.Time

	mu       sync.Mutex
	sessions map[string]*upload
}

func newUploads(dir string) *uploads {
	return &uploads{dir: dir, now: time.Now, sessions: make(map[string]*upload)}
}

// start opens a new empty session for repo, first dropping expired ones.
func (us *uploads) start(repo string) (*upload, error) {
	us.expire()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("registry: upload id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	p := filepath.Join(us.dir, "upload-"+id)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("registry: start upload: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("registry: start upload: %w", err)
	}
	u := &upload{id: id, repo: repo, path: p, hash: sha256.New(), touched: us.now()}
	us.mu.Lock()
	us.sessions[id] = u
	us.mu.Unlock()
	return u, nil
}

// lock returns the session id of repo, locked; the caller must unlock it.
func (us *uploads) lock(repo, id string) (*upload, error) {
	us.mu.Lock()
	u, ok := us.sessions[id]
	us.mu.Unlock()
	if !ok || u.repo != repo {
		return nil, fmt.Errorf("%w: %s", ErrUploadUnknown, id)
	}
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrUploadUnknown, id)
	}
	u.touched = us.now()
	return u, nil
}

// close ends a locked session and removes its file unless it was renamed.
func (us *uploads) close(u *upload) {
	u.closed = true
	_ = os.Remove(u.path)
	us.mu.Lock()
	delete(us.sessions, u.id)
	us.mu.Unlock()
}

// expire drops sessions idle for longer than uploadTTL. Sessions busy with
// a request are skipped.
func (us *uploads) expire() {
	cutoff := us.now().Add(-uploadTTL)
	us.mu.Lock()
	var old []*upload
	for _, u := range us.sessions {
		old = append(old, u)
	}
	us.mu.Unlock()
	for _, u := range old {
		if !u.mu.TryLock() {
			continue
		}
		if u.closed || u.touched.Before(cutoff) {
			us.close(u)
		}
		u.mu.Unlock()
	}
}

// appendLocked adds r's bytes to the locked session u. If start >= 0 it is
// the offset the client says the chunk begins at, and must equal the
// current size. On failure the session is rolled back to where it was, so
// the client may retry the chunk. If want >= 0 the chunk must carry exactly
// want bytes.
func (u *upload) appendLocked(r io.Reader, start, want int64) error {
	if start >= 0 && start != u.size {
		return fmt.Errorf("%w: chunk starts at %d, upload has %d bytes", ErrRangeInvalid, start, u.size)
	}
	state, err := u.hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return fmt.Errorf("registry: snapshot hash: %w", err)
	}
	f, err := os.OpenFile(u.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("registry: open upload: %w", err)
	}
	if want >= 0 {
		r = io.LimitReader(r, want)
	}
	n, err := io.Copy(io.MultiWriter(f, u.hash), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && want >= 0 && n != want {
		err = fmt.Errorf("%w: chunk should carry %d bytes, got %d", ErrUploadInvalid, want, n)
	}
	if err != nil {
		_ = os.Truncate(u.path, u.size)
		if uerr := u.hash.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); uerr != nil {
			u.closed = true // cannot trust the running hash any more
		}
		return fmt.Errorf("registry: upload chunk: %w", err)
	}
	u.size += n
	return nil
}

// digestLocked is the sha256 digest of everything appended so far.
func (u *upload) digestLocked() string {
	return "sha256:" + hex.EncodeToString(u.hash.Sum(nil))
}
