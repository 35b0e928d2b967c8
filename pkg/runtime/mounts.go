package runtime

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
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
}

// volumeName is docker's rule for local volume names.
var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

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
		if !volumeName.MatchString(m.Source) {
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
	return nil
}

// ValidateMount checks m with the rules of ContainerSpec.Mounts, so that
// the API can refuse a bad mount before any worker sees it.
func ValidateMount(m Mount) error { return m.validate() }

// ParseMount parses docker's --mount syntax: comma-separated key=value
// pairs type=bind|volume|tmpfs, source|src, target|destination|dst,
// readonly|ro[=true|false], tmpfs-size (bytes, or with a k/m/g suffix) and
// tmpfs-mode (octal). type defaults to volume, as in docker.
func ParseMount(s string) (Mount, error) {
	m := Mount{Type: MountVolume}
	for _, field := range strings.Split(s, ",") {
		k, v, hasValue := strings.Cut(strings.TrimSpace(field), "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			if !hasValue {
				m.ReadOnly = true
				continue
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return m, fmt.Errorf("mount %q: readonly=%q: want true or false", s, v)
			}
			m.ReadOnly = b
		case "tmpfs-size":
			n, err := parseByteSize(v)
			if err != nil {
				return m, fmt.Errorf("mount %q: tmpfs-size=%q: %w", s, v, err)
			}
			m.TmpfsSize = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return m, fmt.Errorf("mount %q: tmpfs-mode=%q: want an octal mode such as 1777", s, v)
			}
			m.TmpfsMode = uint32(n)
		case "":
			return m, fmt.Errorf("mount %q: empty field", s)
		default:
			return m, fmt.Errorf("mount %q: unknown key %q; want type, source, target, readonly, tmpfs-size or tmpfs-mode", s, k)
		}
	}
	if err := m.validate(); err != nil {
		return m, fmt.Errorf("mount %q: %w", s, err)
	}
	return m, nil
}

// parseByteSize parses "1048576", "64k", "64m", "1g" (binary units).
func parseByteSize(v string) (int64, error) {
	mult := int64(1)
	lv := strings.ToLower(strings.TrimSuffix(strings.ToLower(v), "b"))
	switch {
	case strings.HasSuffix(lv, "k"):
		mult, lv = 1<<10, lv[:len(lv)-1]
	case strings.HasSuffix(lv, "m"):
		mult, lv = 1<<20, lv[:len(lv)-1]
	case strings.HasSuffix(lv, "g"):
		mult, lv = 1<<30, lv[:len(lv)-1]
	}
	n, err := strconv.ParseInt(lv, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a size in bytes, optionally with k, m or g")
	}
	return n * mult, nil
}
