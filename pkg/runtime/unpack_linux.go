package runtime

import (
	"archive/tar"

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
