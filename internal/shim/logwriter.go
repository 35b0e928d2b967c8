package shim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"
)

// LogLineMax is where a line without newline is cut into partial entries,
// as docker does.
const LogLineMax = 16 << 10

// LogEntry is one line of a container's output, as stored: docker's
// json-file format, {"log":"…\n","stream":"stdout","time":"…"}.
type LogEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// LogWriter appends LogEntry lines to path and rotates it when it would
// exceed maxSize: path → path.1 → … → path.(maxFiles-1), the oldest
// dropped. maxSize <= 0 disables rotation. Safe for concurrent use.
type LogWriter struct {
	path     string
	maxSize  int64
	maxFiles int

	mu   sync.Mutex
	f    *os.File
	size int64
	buf  bytes.Buffer
}

func OpenLogWriter(path string, maxSize int64, maxFiles int) (*LogWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &LogWriter{path: path, maxSize: maxSize, maxFiles: max(maxFiles, 1), f: f, size: fi.Size()}, nil
}

// Write appends one entry.
func (w *LogWriter) Write(stream string, line []byte, t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Reset()
	e := LogEntry{Log: string(line), Stream: stream, Time: t.UTC()}
	if err := json.NewEncoder(&w.buf).Encode(&e); err != nil { // Encode adds the newline
		return err
	}
	if w.maxSize > 0 && w.size > 0 && w.size+int64(w.buf.Len()) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(w.buf.Bytes())
	w.size += int64(n)
	return err
}

func (w *LogWriter) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	if w.maxFiles == 1 {
		if err := os.Truncate(w.path, 0); err != nil {
			return err
		}
	} else {
		for i := w.maxFiles - 1; i > 1; i-- {
			err := os.Rename(RotatedName(w.path, i-1), RotatedName(w.path, i))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if err := os.Rename(w.path, RotatedName(w.path, 1)); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	return nil
}

func (w *LogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

func RotatedName(path string, i int) string { return path + "." + strconv.Itoa(i) }

// Pump copies r into w as entries of stream, one per line (a line longer
// than LogLineMax is cut), until r ends.
func (w *LogWriter) Pump(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, LogLineMax)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if werr := w.Write(stream, line, time.Now()); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
}
