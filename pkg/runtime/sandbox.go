package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/minke-io/minke/internal/shim"
)

// MinMemoryLimit is the smallest memory limit the runtime accepts (docker's
// 6 MiB floor): below it the container's init and the Go runtime of the
// shim cannot even start, so the task would fail with a confusing OOM.
const MinMemoryLimit = 6 << 20

// Limits on cpu.shares, as the kernel clamps them (v1) and docker refuses
// values outside.
const (
	minCPUShares = 2
	maxCPUShares = 262144
)

// sandboxConfig is the part of the init's configuration that confines the
// process beyond namespaces and capabilities. Paths are host paths; the init
// opens them before pivot_root and mounts them after it, so that mount
// targets are resolved inside the container's root and a symlink in the
// image cannot point a mount at the host.
type sandboxConfig = shim.SandboxConfig

// initMount is one resolved mount for the init.
type initMount = shim.Mount

// validateSandbox checks the sandbox fields of a spec without I/O.
func (s *ContainerSpec) validateSandbox() error {
	if s.MemoryLimit > 0 && s.MemoryLimit < MinMemoryLimit {
		return fmt.Errorf("%w: MemoryLimit %d bytes is below the minimum of %d bytes (6MiB)", ErrInvalidSpec, s.MemoryLimit, MinMemoryLimit)
	}
	if s.PidsLimit < -1 {
		return fmt.Errorf("%w: PidsLimit %d: want a positive number, or 0 or -1 for unlimited", ErrInvalidSpec, s.PidsLimit)
	}
	if s.CPUShares != 0 && (s.CPUShares < minCPUShares || s.CPUShares > maxCPUShares) {
		return fmt.Errorf("%w: CPUShares %d: want %d to %d, or 0 for the default", ErrInvalidSpec, s.CPUShares, minCPUShares, maxCPUShares)
	}
	targets := map[string]bool{}
	for i, m := range s.Mounts {
		if err := m.validate(); err != nil {
			return fmt.Errorf("%w: Mounts[%d]: %w", ErrInvalidSpec, i, err)
		}
		t := filepath.Clean(m.Target)
		if targets[t] {
			return fmt.Errorf("%w: Mounts[%d]: target %q is mounted twice", ErrInvalidSpec, i, m.Target)
		}
		targets[t] = true
	}
	for _, l := range s.ExtraHosts {
		if err := validateHostsLine(l); err != nil {
			return fmt.Errorf("%w: ExtraHosts entry %q: %w", ErrInvalidSpec, l, err)
		}
	}
	for _, d := range s.DNSServers {
		if _, err := netip.ParseAddr(d); err != nil {
			return fmt.Errorf("%w: DNSServers entry %q is not an IP address", ErrInvalidSpec, d)
		}
	}
	for _, f := range [][]string{s.DNSSearch, s.DNSOptions} {
		for _, v := range f {
			if v == "" || strings.ContainsAny(v, " \t\n") {
				return fmt.Errorf("%w: DNS search domain or option %q: want one word", ErrInvalidSpec, v)
			}
		}
	}
	if _, err := resolveRlimits(s.Ulimits); err != nil {
		return err
	}
	for _, g := range s.Groups {
		if g == "" || strings.ContainsAny(g, ":\n") {
			return fmt.Errorf("%w: Groups entry %q: want a group name or a numeric gid", ErrInvalidSpec, g)
		}
	}
	return nil
}

// validateHostsLine checks "IP name [alias...]".
func validateHostsLine(l string) error {
	f := strings.Fields(l)
	if len(f) < 2 {
		return fmt.Errorf("want \"IP name [alias...]\"")
	}
	if _, err := netip.ParseAddr(f[0]); err != nil {
		return fmt.Errorf("%q is not an IP address", f[0])
	}
	return nil
}

// resolveSandbox prepares what the init needs from spec: the seccomp
// filter for caps, volume directories (created on first use), the
// container's /etc/hosts, /etc/hostname and /etc/resolv.conf (written into
// dir), and the rlimits.
func (r *Runtime) resolveSandbox(spec *ContainerSpec, caps capMask, dir string) (sandboxConfig, error) {
	var sb sandboxConfig
	if !spec.SeccompUnconfined {
		f, err := seccompFilter(caps)
		if err != nil {
			return sb, err
		}
		sb.Seccomp = f
	}
	sb.ReadonlyRootfs = spec.ReadonlyRootfs
	rl, err := resolveRlimits(spec.Ulimits)
	if err != nil {
		return sb, err
	}
	sb.Rlimits = rl
	sb.Groups = spec.Groups

	mounted := map[string]bool{}
	for _, m := range spec.Mounts {
		im, err := r.resolveMount(m)
		if err != nil {
			return sb, err
		}
		mounted[im.Target] = true
		sb.Mounts = append(sb.Mounts, im)
	}
	etc, err := writeEtcFiles(spec, dir)
	if err != nil {
		return sb, err
	}
	for _, m := range etc {
		if !mounted[m.Target] { // a user's mount wins, as in docker
			sb.Mounts = append(sb.Mounts, m)
		}
	}
	return sb, nil
}

// volumesDir holds named local volumes: volumes/<name>/_data, as docker's
// local driver lays them out.
func (r *Runtime) volumesDir() string { return filepath.Join(r.root, "volumes") }

// VolumePath is the host directory of the named local volume.
func (r *Runtime) VolumePath(name string) string {
	return filepath.Join(r.volumesDir(), name, "_data")
}

func (r *Runtime) resolveMount(m Mount) (initMount, error) {
	im := initMount{Target: filepath.Clean(m.Target), ReadOnly: m.ReadOnly}
	switch m.Type {
	case MountBind:
		// docker refuses a missing bind source rather than creating it.
		if _, err := os.Stat(m.Source); err != nil {
			return im, fmt.Errorf("%w: bind mount source %q: %w", ErrInvalidSpec, m.Source, err)
		}
		im.Type, im.Source = "bind", filepath.Clean(m.Source)
	case MountVolume:
		p := r.VolumePath(m.Source)
		_, err := os.Stat(p)
		created := errors.Is(err, fs.ErrNotExist)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return im, fmt.Errorf("runtime: creating volume %q: %w", m.Source, err)
		}
		im.Type, im.Source = "bind", p
		im.CopyUp = created && !m.NoCopy
	case MountTmpfs:
		im.Type = "tmpfs"
		mode := m.TmpfsMode
		if mode == 0 {
			mode = 0o1777
		}
		im.Data = "mode=" + strconv.FormatUint(uint64(mode), 8)
		if m.TmpfsSize > 0 {
			im.Data += ",size=" + strconv.FormatInt(m.TmpfsSize, 10)
		}
	}
	return im, nil
}

// ValidateSandbox checks the sandbox fields of spec (mounts, ulimits, /etc
// files, groups, pids and CPU weight, memory floor) with the runtime's
// rules, so that the API can refuse them before any worker sees them. ID
// and Image are not checked.
func ValidateSandbox(spec ContainerSpec) error { return spec.validateSandbox() }

// execSandbox is the part of the sandbox a command exec'd into the running
// container gets (a healthcheck): its seccomp filter, rlimits and groups.
// It is derived from the spec, which an adopted container also has.
func (c *Container) execSandbox() (sandboxConfig, error) {
	var sb sandboxConfig
	if !c.spec.SeccompUnconfined {
		f, err := seccompFilter(c.caps)
		if err != nil {
			return sb, err
		}
		sb.Seccomp = f
	}
	rl, err := resolveRlimits(c.spec.Ulimits)
	if err != nil {
		return sb, err
	}
	sb.Rlimits, sb.Groups = rl, c.spec.Groups
	return sb, nil
}
