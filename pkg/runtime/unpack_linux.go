package runtime

import (
	"archive/tar"
	"errors"

	"golang.org/x/sys/unix"
)

// mkWhiteout creates the overlayfs whiteout for path: a 0/0 char device.
func mkWhiteout(path string) error {
	return unix.Mknod(path, unix.S_IFCHR|0o000, int(unix.Mkdev(0, 0)))
}

// setOpaque marks dir as opaque for overlayfs, hiding lower layers' content.
func setOpaque(dir string) error {
	return unix.Lsetxattr(dir, "trusted.overlay.opaque", []byte("y"), 0)
}

func mknod(path string, hdr *tar.Header) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	return unix.Mknod(path, mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
}

// setXattr sets one extended attribute without following a symlink.
// user.* attributes are advisory: a filesystem without support for them,
// or a symlink (which the kernel never gives user.* attributes), is not an
// error; for other namespaces it is.
func setXattr(path, attr, value string) error {
	err := unix.Lsetxattr(path, attr, []byte(value), 0)
	if (errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM)) && len(attr) > 5 && attr[:5] == "user." {
		return nil
	}
	return err
}

// setTimes sets the access and modification times of path, not following
// a symlink.
func setTimes(path string, hdr *tar.Header) error {
	if hdr.ModTime.IsZero() {
		return nil
	}
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}
