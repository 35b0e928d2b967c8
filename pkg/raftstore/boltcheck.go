package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// checkBoltSize refuses a bolt file shorter than its own meta page says it
// is (a truncated copy or a torn disk): bbolt would open it and fail, or
// not, depending on which pages the truncation removed, so the check must
// not depend on luck. A missing file is fine (a new log).
//
// A bolt file starts with two meta pages; each holds, after a 16-byte page
// header, magic, version, page size, flags, the root bucket (16 bytes), the
// freelist page, the high-water page id and the transaction id. The valid
// meta with the higher transaction id is the current one.
func checkBoltSize(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	const magic = 0xED0CDAED
	var best struct{ pgid, txid, pageSize uint64 }
	found := false
	for _, off := range []int64{0, -1} {
		if off == -1 {
			if best.pageSize == 0 {
				break
			}
			off = int64(best.pageSize)
		}
		var b [80]byte
		if _, err := f.ReadAt(b[:], off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		le := binary.LittleEndian
		if le.Uint32(b[16:]) != magic {
			continue
		}
		pageSize, pgid, txid := uint64(le.Uint32(b[24:])), le.Uint64(b[56:]), le.Uint64(b[64:])
		if !found || txid > best.txid {
			best.pgid, best.txid, best.pageSize, found = pgid, txid, pageSize, true
		}
	}
	if !found {
		return nil // not bolt's layout: let bbolt say what is wrong
	}
	if need := best.pgid * best.pageSize; uint64(fi.Size()) < need {
		return fmt.Errorf("%w: %s is truncated: %d bytes, but its pages reach %d; restore it from a backup, or rejoin this manager with an empty --data-dir",
			ErrCorrupt, path, fi.Size(), need)
	}
	return nil
}
