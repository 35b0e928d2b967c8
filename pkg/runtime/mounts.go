package runtime

import (
	"fmt"
	"math"
	"path"
	"strings"
)

// Mount types, as docker's --mount type=.
const (
	MountBind   = "bind"   // a host path
	MountVolume = "volume" // a named local volume on the worker, created on first use
	MountTmpfs  = "tmpfs"  // a fresh tmpfs (nosuid, nodev, noexec)
)

// Mount is a filesystem mounted into the container.
type Mount struct {
	// Type is MountBind, MountVolume or MountTmpfs.
	Type string
	// Source is the absolute host path (bind) or the volume name (volume);
	// empty for tmpfs.
	Source string
	// Target is the absolute path in the container; not "/".
	Target   string
	ReadOnly bool
	// TmpfsSize in bytes (0: the kernel's default, half of RAM) and
	// TmpfsMode (0: 1777) apply to tmpfs only.
	TmpfsSize int64
	TmpfsMode uint32
	// NoCopy (volume only) leaves a new volume empty. By default, as in
	// docker, a volume created by this mount is first filled with what
	// the image has at Target.
	NoCopy bool
}

// volumeName is docker's rule for local volume names:
// [a-zA-Z0-9][a-zA-Z0-9_.-]+.
func volumeName(s string) bool { return isName(s, 2, math.MaxInt) }

func (m Mount) validate() error {
	if !strings.HasPrefix(m.Target, "/") || path.Clean(m.Target) == "/" {
		return fmt.Errorf("target %q: want an absolute path other than /", m.Target)
	}
	switch m.Type {
	case MountBind:
		if !strings.HasPrefix(m.Source, "/") {
			return fmt.Errorf("bind source %q: want an absolute host path", m.Source)
		}
	case MountVolume:
		if !volumeName(m.Source) {
			return fmt.Errorf("volume source %q: want a volume name of [a-zA-Z0-9][a-zA-Z0-9_.-]+", m.Source)
		}
	case MountTmpfs:
		if m.Source != "" {
			return fmt.Errorf("tmpfs takes no source (got %q)", m.Source)
		}
		if m.TmpfsSize < 0 {
			return fmt.Errorf("tmpfs size %d is negative", m.TmpfsSize)
		}
		if m.TmpfsMode > 0o7777 {
			return fmt.Errorf("tmpfs mode %o: want at most 7777 (octal)", m.TmpfsMode)
		}
	default:
		return fmt.Errorf("type %q: want bind, volume or tmpfs", m.Type)
	}
	if m.Type != MountTmpfs && (m.TmpfsSize != 0 || m.TmpfsMode != 0) {
		return fmt.Errorf("tmpfs-size and tmpfs-mode apply to type=tmpfs only")
	}
	if m.Type != MountVolume && m.NoCopy {
		return fmt.Errorf("volume-nocopy applies to type=volume only")
	}
	return nil
}

// ValidateMount checks m with the rules of ContainerSpec.Mounts, so that
// the API can refuse a bad mount before any worker sees it.
func ValidateMount(m Mount) error { return m.validate() }
