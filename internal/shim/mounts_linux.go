package shim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// mountAll mounts the spec's mounts and the /etc files into rootfs. It
// runs in the init's mount namespace before pivot_root, while the host
// sources are reachable; targets are resolved inside rootfs (securejoin),
// so that a symlink in the image cannot point a mount at the host.
func mountAll(rootfs string, mounts []Mount) error {
	for _, m := range mounts {
		if err := mountOne(rootfs, m); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.Type, m.Target, err)
		}
	}
	return nil
}

func mountOne(rootfs string, m Mount) error {
	isDir := true
	if m.Type == "bind" {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return err
		}
		isDir = fi.IsDir()
	}
	target, err := mountTarget(rootfs, m.Target, isDir)
	if err != nil {
		return err
	}
	if m.CopyUp {
		if err := copyTree(target, m.Source); err != nil {
			return fmt.Errorf("copying the image's %s into the new volume: %w", m.Target, err)
		}
	}
	switch m.Type {
	case "bind":
		if err := unix.Mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if m.ReadOnly {
			// A remount sets the per-mount flags to exactly these; keep the
			// ones the source mount had, which a remount may not clear.
			var sfs unix.Statfs_t
			if err := unix.Statfs(target, &sfs); err != nil {
				return err
			}
			flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
			flags |= uintptr(sfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
			if err := unix.Mount("", target, "", flags, ""); err != nil {
				return fmt.Errorf("remounting read-only: %w", err)
			}
		}
	case "tmpfs":
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
		if m.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		if err := unix.Mount("tmpfs", target, "tmpfs", flags, m.Data); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown mount type %q", m.Type)
	}
	return nil
}

// mountTarget creates the mount point (a directory, or an empty file for a
// file bind) inside rootfs and returns its host path. Symlinks of the image
// are resolved as if rootfs were the root (securejoin), and a target that
// lands in /proc or /sys, where a mount could hide the masks or the
// read-only /proc/sys, is refused.
func mountTarget(rootfs, target string, isDir bool) (string, error) {
	p, err := securejoin.SecureJoin(rootfs, target)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(rootfs, p)
	if err != nil {
		return "", err
	}
	for _, d := range []string{"proc", "sys"} {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return "", fmt.Errorf("target resolves to /%s, inside /%s", rel, d)
		}
	}
	// Every component of p up to here is a directory or missing, and the
	// container is not running yet, so MkdirAll cannot be redirected.
	if isDir {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", err
		}
		return p, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	if err := touch(p, unix.O_RDONLY|unix.O_NOFOLLOW, 0o644); err != nil && !errors.Is(err, unix.EEXIST) {
		return "", err
	}
	return p, nil
}

// remountRootReadonly makes the container's root read-only (docker
// --read-only). The root is a bind of the nodev overlay; nodev is repeated
// because a bind remount sets the per-mount flags to exactly those given.
func remountRootReadonly() error {
	if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remounting the root read-only: %w", err)
	}
	return nil
}

// copyTree copies the contents of directory src (in the container's
// rootfs, not yet running, so nothing changes under the walk) into dst,
// keeping modes, owners, symlinks and modification times. Symlinks are
// copied, never followed; device nodes, fifos and sockets are skipped.
func copyTree(src, dst string) error {
	fi, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil // nothing in the image there
	}
	if err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*unix.Stat_t)
		switch {
		case d.IsDir():
			if rel != "." {
				if err := os.Mkdir(out, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
			}
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, out); err != nil {
				return err
			}
			if st != nil {
				return os.Lchown(out, int(st.Uid), int(st.Gid))
			}
			return nil
		case d.Type().IsRegular():
			if err := copyFile(p, out); err != nil {
				return err
			}
		default:
			return nil
		}
		if st != nil {
			if err := os.Lchown(out, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if err := os.Chmod(out, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		return os.Chtimes(out, info.ModTime(), info.ModTime())
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// touch creates p (flags: how to open it, O_CREAT and O_CLOEXEC added) and
// closes it at once: the raw calls, without os.File's poller registration,
// which costs four more system calls per file on the init's path.
func touch(p string, flags int, mode uint32) error {
	fd, err := unix.Open(p, flags|unix.O_CREAT|unix.O_CLOEXEC, mode)
	if err != nil {
		return &fs.PathError{Op: "create", Path: p, Err: err}
	}
	return unix.Close(fd)
}
