package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// store is the on-disk layout of the registry:
//
//	blobs/sha256/<hex>                       blob and manifest content
//	repositories/<name>/_manifests/sha256/<hex>  media type of a manifest pushed to <name>
//	repositories/<name>/_tags/<tag>          digest the tag points at
//	uploads/                                 uploads in progress and temp files
//
// Content is addressed by digest, so concurrent writers of the same content
// race harmlessly. Every file is written to uploads/ and renamed into place,
// so readers never see a partial file. The "_" prefixes cannot begin a
// repository name component, so a repository "a/_tags" cannot collide with
// the tags of "a".
type store struct {
	root string
}

func newStore(root string) (*store, error) {
	s := &store{root: root}
	// Uploads do not survive a restart: the sessions lived in memory.
	if err := os.RemoveAll(s.uploadsDir()); err != nil {
		return nil, fmt.Errorf("registry: clear uploads: %w", err)
	}
	for _, d := range []string{s.uploadsDir(), filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "repositories")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("registry: create %s: %w", d, err)
		}
	}
	return s, nil
}

func (s *store) uploadsDir() string         { return filepath.Join(s.root, "uploads") }
func (s *store) blobPath(hex string) string { return filepath.Join(s.root, "blobs", "sha256", hex) }
func (s *store) repoDir(repo string) string {
	return filepath.Join(s.root, "repositories", filepath.FromSlash(repo))
}
func (s *store) tagsDir(repo string) string { return filepath.Join(s.repoDir(repo), "_tags") }
func (s *store) linksDir(repo string) string {
	return filepath.Join(s.repoDir(repo), "_manifests", "sha256")
}

// statBlob returns the size of a stored blob, or ErrBlobUnknown.
func (s *store) statBlob(hex string) (int64, error) {
	fi, err := os.Stat(s.blobPath(hex))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: sha256:%s", ErrBlobUnknown, hex)
	}
	if err != nil {
		return 0, fmt.Errorf("registry: stat blob: %w", err)
	}
	return fi.Size(), nil
}

// openBlob opens a stored blob for reading, or returns ErrBlobUnknown.
func (s *store) openBlob(hex string) (*os.File, error) {
	f, err := os.Open(s.blobPath(hex))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: sha256:%s", ErrBlobUnknown, hex)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: open blob: %w", err)
	}
	return f, nil
}

// commitBlob moves a verified file (which must live under uploads/) into
// the blob store. Committing a blob that already exists replaces it with
// identical content.
func (s *store) commitBlob(tmp, hex string) error {
	if err := os.Rename(tmp, s.blobPath(hex)); err != nil {
		return fmt.Errorf("registry: commit blob: %w", err)
	}
	return nil
}

// putManifest stores manifest content, links it into repo with its media
// type and, if tag is not empty, points tag at it. Referenced blobs must
// have been checked by the caller.
func (s *store) putManifest(repo, hex, mediaType string, content []byte, tag string) error {
	if _, err := s.statBlob(hex); errors.Is(err, ErrBlobUnknown) {
		if err := s.writeAtomic(s.blobPath(hex), content); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := s.writeAtomic(filepath.Join(s.linksDir(repo), hex), []byte(mediaType)); err != nil {
		return err
	}
	if tag == "" {
		return nil
	}
	return s.writeAtomic(filepath.Join(s.tagsDir(repo), tag), []byte("sha256:"+hex))
}

// manifest returns the media type of the manifest hex in repo, or
// ErrManifestUnknown if it was never pushed to repo.
func (s *store) manifest(repo, hex string) (mediaType string, err error) {
	b, err := os.ReadFile(filepath.Join(s.linksDir(repo), hex))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %s@sha256:%s", ErrManifestUnknown, repo, hex)
	}
	if err != nil {
		return "", fmt.Errorf("registry: read manifest link: %w", err)
	}
	return string(b), nil
}

// resolveTag returns the digest repo:tag points at, or ErrManifestUnknown.
func (s *store) resolveTag(repo, tag string) (digest string, err error) {
	b, err := os.ReadFile(filepath.Join(s.tagsDir(repo), tag))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %s:%s", ErrManifestUnknown, repo, tag)
	}
	if err != nil {
		return "", fmt.Errorf("registry: read tag: %w", err)
	}
	digest = strings.TrimSpace(string(b))
	if _, err := parseDigest(digest); err != nil {
		return "", fmt.Errorf("registry: corrupt tag file %s:%s: %w", repo, tag, err)
	}
	return digest, nil
}

// listTags returns the sorted tags of repo, or ErrNameUnknown if nothing
// was ever pushed to it.
func (s *store) listTags(repo string) ([]string, error) {
	if _, err := os.Stat(s.linksDir(repo)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNameUnknown, repo)
	}
	entries, err := os.ReadDir(s.tagsDir(repo))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("registry: list tags: %w", err)
	}
	tags := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() && ValidateTag(e.Name()) == nil {
			tags = append(tags, e.Name())
		}
	}
	sort.Strings(tags)
	return tags, nil
}

// writeAtomic writes data to path through a synced temp file in uploads/
// and a rename, creating parent directories as needed.
func (s *store) writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("registry: write %s: %w", path, err)
	}
	f, err := os.CreateTemp(s.uploadsDir(), "write-*")
	if err != nil {
		return fmt.Errorf("registry: write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("registry: write %s: %w", path, err)
	}
	return nil
}
