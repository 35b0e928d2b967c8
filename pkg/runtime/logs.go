package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/minke-io/minke/internal/shim"
)

// Docker-like log rotation defaults (those of docker's "local" driver, the
// one that rotates by default).
const (
	DefaultLogMaxSize  = 20 << 20
	DefaultLogMaxFiles = 5
)

// LogEntry is one line of a container's output, as stored: docker's
// json-file format, {"log":"…\n","stream":"stdout","time":"…"}. The shim
// writes them (internal/shim LogWriter).
type LogEntry = shim.LogEntry

func rotatedName(path string, i int) string { return shim.RotatedName(path, i) }

// LogOptions selects what ReadLogs returns.
type LogOptions struct {
	// Tail, when >= 0, starts with the last Tail entries; -1 is all.
	Tail int
	// Since, if not zero, skips entries older than it.
	Since time.Time
	// Follow keeps reading new entries, across rotations, until ctx ends.
	Follow bool
	// PollInterval is how often a followed log is checked for growth;
	// default 200ms.
	PollInterval time.Duration
}

// ReadLogs calls fn with the container's log entries, oldest first, from
// the rotated files and the current one. With Follow it keeps going until
// ctx ends; fn returning an error stops it with that error.
func (r *Runtime) ReadLogs(ctx context.Context, id string, opts LogOptions, fn func(LogEntry) error) error {
	if err := validID(id); err != nil {
		return err
	}
	path := r.LogPath(id)
	// Open the current file first: what it holds is newer than any rotated
	// file opened after it (a rotation meanwhile only duplicates nothing,
	// since renamed files keep their inode).
	cur, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("runtime: opening log of container %s: %w", id, err)
	}
	defer func() { cur.Close() }()
	curInfo, _ := cur.Stat()

	var older []string
	for i := 1; ; i++ {
		p := rotatedName(path, i)
		fi, err := os.Stat(p)
		if err != nil {
			break
		}
		if os.SameFile(fi, curInfo) {
			continue
		}
		older = append([]string{p}, older...) // oldest first
	}

	var ring []LogEntry // the last Tail entries when Tail >= 0
	emit := func(e LogEntry) error {
		if !opts.Since.IsZero() && e.Time.Before(opts.Since) {
			return nil
		}
		if opts.Tail >= 0 {
			if opts.Tail == 0 {
				return nil
			}
			if len(ring) == opts.Tail {
				ring = ring[1:]
			}
			ring = append(ring, e)
			return nil
		}
		return fn(e)
	}
	for _, p := range older {
		f, err := os.Open(p)
		if err != nil {
			continue // rotated away meanwhile
		}
		err = newEntryReader(f).drain(emit)
		f.Close()
		if err != nil {
			return err
		}
	}
	rd := newEntryReader(cur)
	if err := rd.drain(emit); err != nil {
		return err
	}
	for _, e := range ring {
		if err := fn(e); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	opts.Tail = -1
	poll := opts.PollInterval
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := rd.drain(emit); err != nil {
			return err
		}
		fi, err := os.Stat(path)
		if err != nil {
			// Missing for a moment during a rotation; for good once the
			// container was removed.
			if _, derr := os.Stat(filepath.Dir(path)); errors.Is(derr, fs.ErrNotExist) {
				return nil
			}
			continue
		}
		if os.SameFile(fi, curInfo) {
			continue
		}
		// Rotated, maybe more than once since the last look: finish the old
		// file, then read the files rotated after it (path.K-1 … path.1),
		// then go on with the current one. A reader that falls behind by
		// more than the number of files kept misses what was dropped.
		if err := rd.drain(emit); err != nil {
			return err
		}
		for _, p := range newerRotated(path, curInfo) {
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			err = newEntryReader(f).drain(emit)
			f.Close()
			if err != nil {
				return err
			}
		}
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		nfi, err := f.Stat()
		if err != nil {
			f.Close()
			continue
		}
		cur.Close()
		cur, curInfo = f, nfi
		rd = newEntryReader(cur)
	}
}

// newerRotated lists the rotated files newer than old, oldest first: if old
// is now path.K, that is path.K-1 down to path.1. If old was dropped, every
// rotated file is newer.
func newerRotated(path string, old os.FileInfo) []string {
	var files []string
	for i := 1; ; i++ {
		p := rotatedName(path, i)
		fi, err := os.Stat(p)
		if err != nil {
			break
		}
		if os.SameFile(fi, old) {
			break
		}
		files = append([]string{p}, files...)
	}
	return files
}

// entryReader decodes the complete lines of a growing log file; a partial
// last line (a write in progress) is kept for the next call. Lines that are
// not entries are skipped.
type entryReader struct {
	f       *os.File
	pending []byte
	buf     []byte
}

func newEntryReader(f *os.File) *entryReader {
	return &entryReader{f: f, buf: make([]byte, 64<<10)}
}

// drain reads f to its current end.
func (er *entryReader) drain(fn func(LogEntry) error) error {
	for {
		n, err := er.f.Read(er.buf)
		data := er.buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				er.pending = append(er.pending, data...)
				break
			}
			line := data[:i+1]
			if len(er.pending) > 0 {
				line = append(er.pending, line...)
				er.pending = er.pending[:0]
			}
			data = data[i+1:]
			var e LogEntry
			if json.Unmarshal(line, &e) != nil {
				continue
			}
			if ferr := fn(e); ferr != nil {
				return ferr
			}
		}
		if err != nil || n == 0 {
			if errors.Is(err, io.EOF) || n == 0 {
				return nil
			}
			return err
		}
	}
}

// OpenLog returns the container's output so far as plain text (the log
// lines of both streams, in order, without the JSON framing).
func (r *Runtime) OpenLog(id string) (io.ReadCloser, error) {
	var buf bytes.Buffer
	err := r.ReadLogs(context.Background(), id, LogOptions{Tail: -1}, func(e LogEntry) error {
		buf.WriteString(e.Log)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}
