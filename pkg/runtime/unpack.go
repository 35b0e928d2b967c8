package runtime

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	// xattrPAXPrefix marks an extended attribute in a PAX header, as GNU
	// tar and docker write them.
	xattrPAXPrefix = "SCHILY.xattr."
	// DefaultMaxLayerFileSize is the largest file a layer may hold unless
	// Config.MaxLayerFileSize says otherwise.
	DefaultMaxLayerFileSize int64 = 8 << 30
)

// unpackLimits bound what one layer may make the runtime write.
type unpackLimits struct {
	// MaxFileSize is the largest regular file (its logical size, so
	// sparse files count in full). Zero means DefaultMaxLayerFileSize.
	MaxFileSize int64
}

// applyLayer extracts the uncompressed layer tar r into dir, which must be
// a fresh directory, converting OCI whiteouts to the overlayfs format:
// ".wh.NAME" becomes a 0/0 character device NAME, and ".wh..wh..opq" sets
// trusted.overlay.opaque=y on its directory. Modes, owners, symlinks and
// hard links (to entries of the same layer) are kept, as are modification
// times and extended attributes (except trusted.*, which would let an image
// forge overlayfs's own metadata: opaque dirs and redirects).
//
// Entry names are interpreted relative to dir: a leading "/" is dropped, a
// name whose ".." elements climb above dir, or whose parent directory is a
// symlink, is refused with ErrUnsafePath. Symlink targets are not checked:
// they are only resolved later, inside the container's root. Character and
// block devices (other than a 0/0 whiteout) are refused with ErrDeviceNode,
// a file larger than lim.MaxFileSize with ErrOversize. On error dir is left
// half-written: the caller removes it.
func applyLayer(dir string, r io.Reader, lim unpackLimits) error {
	if lim.MaxFileSize <= 0 {
		lim.MaxFileSize = DefaultMaxLayerFileSize
	}
	tr := tar.NewReader(r)
	type dirMeta struct {
		path string
		hdr  *tar.Header
	}
	var dirs []dirMeta
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("runtime: reading layer tar: %w", err)
		}
		rel, err := cleanEntryName(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "." {
			continue // the root itself: dir already exists
		}
		parent, base := filepath.Split(rel)
		if err := ensureParents(dir, parent); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrUnsafePath, hdr.Name, err)
		}
		target := filepath.Join(dir, rel)

		if base == whiteoutOpaque {
			if err := setOpaque(filepath.Join(dir, parent)); err != nil {
				return fmt.Errorf("runtime: opaque dir %q: %w", hdr.Name, err)
			}
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			hidden := strings.TrimPrefix(base, whiteoutPrefix)
			if hidden == "" || hidden == "." || hidden == ".." {
				// ".wh..." would whiteout (and first remove) the parent.
				return fmt.Errorf("%w: whiteout %q names no entry of its directory", ErrUnsafePath, hdr.Name)
			}
			wo := filepath.Join(dir, parent, hidden)
			if err := removeExisting(wo, false); err != nil {
				return err
			}
			if err := mkWhiteout(wo); err != nil {
				return fmt.Errorf("runtime: whiteout %q: %w", hdr.Name, err)
			}
			continue
		}

		if err := removeExisting(target, hdr.Typeflag == tar.TypeDir); err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("runtime: mkdir %q: %w", hdr.Name, err)
			}
			dirs = append(dirs, dirMeta{target, hdr})
			continue // metadata applied at the end, after children exist
		case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
			if hdr.Size > lim.MaxFileSize || hdr.Size < 0 {
				return fmt.Errorf("%w: %q is %d bytes; the limit is %d (worker flag --max-layer-file-size)",
					ErrOversize, hdr.Name, hdr.Size, lim.MaxFileSize)
			}
			if err := writeRegular(target, tr); err != nil {
				return fmt.Errorf("runtime: file %q: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return fmt.Errorf("runtime: symlink %q: %w", hdr.Name, err)
			}
		case tar.TypeLink:
			lrel, err := cleanEntryName(hdr.Linkname)
			if err != nil {
				return err
			}
			lparent, _ := filepath.Split(lrel)
			if err := checkNoSymlinkParents(dir, lparent); err != nil {
				return fmt.Errorf("%w: link target %q: %v", ErrUnsafePath, hdr.Linkname, err)
			}
			if err := os.Link(filepath.Join(dir, lrel), target); err != nil {
				return fmt.Errorf("runtime: hard link %q -> %q: %w", hdr.Name, hdr.Linkname, err)
			}
			continue // shares the inode, and so the metadata, of its target
		case tar.TypeChar, tar.TypeBlock:
			// A 0/0 character device is overlayfs's own whiteout, which some
			// tools export as is; it is no device and is kept.
			if hdr.Typeflag == tar.TypeBlock || hdr.Devmajor != 0 || hdr.Devminor != 0 {
				kind := map[byte]string{tar.TypeChar: "character", tar.TypeBlock: "block"}[hdr.Typeflag]
				return fmt.Errorf("%w: %q is a %s device %d:%d; images may not contain device nodes (the runtime provides /dev)",
					ErrDeviceNode, hdr.Name, kind, hdr.Devmajor, hdr.Devminor)
			}
			if err := mknod(target, hdr); err != nil {
				return fmt.Errorf("runtime: whiteout device %q: %w", hdr.Name, err)
			}
		case tar.TypeFifo:
			if err := mknod(target, hdr); err != nil {
				return fmt.Errorf("runtime: fifo %q: %w", hdr.Name, err)
			}
		default:
			continue // pax/gnu metadata entries are consumed by archive/tar
		}
		if err := applyMeta(target, hdr); err != nil {
			return fmt.Errorf("runtime: metadata of %q: %w", hdr.Name, err)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		// A later entry may have replaced the directory, or one of its
		// parents, with a symlink: never follow it out of the layer.
		rel, _ := filepath.Rel(dir, dirs[i].path)
		if err := checkNoSymlinkParents(dir, rel); err != nil {
			continue
		}
		if fi, err := os.Lstat(dirs[i].path); err != nil || !fi.IsDir() {
			continue
		}
		if err := applyMeta(dirs[i].path, dirs[i].hdr); err != nil {
			return fmt.Errorf("runtime: metadata of %q: %w", dirs[i].hdr.Name, err)
		}
	}
	return nil
}

// cleanEntryName makes a tar entry name relative to the layer root. Absolute
// names are resolved inside the root; names escaping it are refused.
func cleanEntryName(name string) (string, error) {
	rel := strings.TrimLeft(filepath.ToSlash(name), "/")
	if rel == "" {
		return ".", nil
	}
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: %q escapes the layer root", ErrUnsafePath, name)
	}
	return filepath.Clean(rel), nil
}

// ensureParents creates the missing parent directories of an entry (tars
// may omit them) and refuses parents that are symlinks.
func ensureParents(root, parent string) error {
	cur := root
	for _, part := range strings.Split(filepath.Clean(parent), string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("parent %q is a symlink", part)
		case !fi.IsDir():
			return fmt.Errorf("parent %q is not a directory", part)
		}
	}
	return nil
}

// checkNoSymlinkParents is ensureParents without creating anything.
func checkNoSymlinkParents(root, parent string) error {
	cur := root
	for _, part := range strings.Split(filepath.Clean(parent), string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("parent %q is a symlink", part)
		}
	}
	return nil
}

// removeExisting clears the way for a new entry at path. An existing
// directory is kept when the new entry is also a directory (its metadata is
// then updated); anything else is replaced, never followed.
func removeExisting(path string, keepDir bool) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() && keepDir {
		return nil
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("runtime: replacing %s: %w", path, err)
	}
	return nil
}

func writeRegular(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// applyMeta sets owner then mode (chown clears setuid bits, so it goes
// first), extended attributes and times; symlinks get no mode. path itself
// is never followed: a symlink is only ever handled as a symlink.
func applyMeta(path string, hdr *tar.Header) error {
	if err := os.Lchown(path, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if err := os.Chmod(path, tarMode(hdr.Mode)); err != nil {
				return err
			}
		}
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, xattrPAXPrefix)
		if !ok || strings.HasPrefix(attr, "trusted.") {
			continue
		}
		if err := setXattr(path, attr, v); err != nil {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	return setTimes(path, hdr)
}

// tarMode converts the permission, setuid, setgid and sticky bits of a tar
// header into an fs.FileMode.
func tarMode(m int64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
