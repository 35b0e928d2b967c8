package imagetar

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// member is where a regular file's bytes sit inside an uncompressed tar.
type member struct {
	off, size int64
}

// tarIndex maps the regular files of a tarball to their byte ranges, so
// they can be read in place without extracting the tarball.
type tarIndex struct {
	file    string
	members map[string]member
}

// indexTar scans file once. Member names are cleaned ("./a" is "a"); a name
// that is absolute or climbs out with ".." is refused, since a tool that
// extracted this tarball would write outside its directory.
func indexTar(file string) (*tarIndex, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("imagetar: %w", err)
	}
	defer f.Close()
	magic, _ := bufio.NewReader(f).Peek(2)
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return nil, fmt.Errorf("%w: %s is gzip-compressed; decompress it first (gunzip)", ErrFormat, file)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("imagetar: %w", err)
	}
	ti := &tarIndex{file: file, members: make(map[string]member)}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not a tar archive: %w", ErrFormat, file, err)
		}
		name, err := cleanMember(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		// tar.Reader reads headers block by block from f without
		// buffering ahead, so f's position is where the data starts.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, fmt.Errorf("imagetar: %w", err)
		}
		ti.members[name] = member{off: off, size: hdr.Size}
	}
	return ti, nil
}

func cleanMember(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %q is absolute", ErrUnsafePath, name)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: %q escapes the archive", ErrUnsafePath, name)
	}
	return c, nil
}

func (ti *tarIndex) has(name string) bool {
	_, ok := ti.members[name]
	return ok
}

// open returns a reader of member name; each call opens the file afresh,
// so readers are independent and the index holds no file open.
func (ti *tarIndex) open(name string) (io.ReadCloser, error) {
	m, ok := ti.members[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %s", ErrFormat, ti.file, name)
	}
	f, err := os.Open(ti.file)
	if err != nil {
		return nil, fmt.Errorf("imagetar: %w", err)
	}
	return sectionCloser{io.NewSectionReader(f, m.off, m.size), f}, nil
}

// readAll reads a small member (JSON), refusing ones over limit bytes.
func (ti *tarIndex) readAll(name string, limit int64) ([]byte, error) {
	if m, ok := ti.members[name]; ok && m.size > limit {
		return nil, fmt.Errorf("%w: %s in %s is %d bytes (limit %d)", ErrFormat, name, ti.file, m.size, limit)
	}
	rc, err := ti.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("imagetar: read %s: %w", name, err)
	}
	return b, nil
}

type sectionCloser struct {
	*io.SectionReader
	f *os.File
}

func (s sectionCloser) Close() error { return s.f.Close() }

func openFile(file string) (io.ReadCloser, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("imagetar: %w", err)
	}
	return f, nil
}
