package runtime

import (
	"fmt"
	"strings"
	"time"

	"github.com/minke-io/minke/internal/shim"
)

// ContainerSpec is what the agent asks the runtime to run. Fields left
// empty take the image's values, with docker's semantics.
type ContainerSpec struct {
	// ID names the container; it is also its hostname (truncated to 63
	// bytes) and its cgroup name. Letters, digits, '_', '.', '-'; at most
	// 128 bytes.
	ID string
	// Image is the reference as given to Pull.
	Image string
	// Entrypoint, if non-nil, replaces the image's Entrypoint; the image's
	// Cmd is then dropped, as docker does.
	Entrypoint []string
	// Args, if non-empty, replaces the image's Cmd.
	Args []string
	// Env entries are KEY=VALUE; they override the image's by key.
	Env []string
	// WorkingDir overrides the image's; default "/". Created if missing.
	WorkingDir string
	// User overrides the image's: uid[:gid] numerically, or names looked up
	// in the image's /etc/passwd and /etc/group. Default root.
	User string
	// MemoryLimit in bytes; 0 means none.
	MemoryLimit int64
	// NanoCPUs: 1e9 is one CPU; 0 means none. Applied as a CFS quota over a
	// 100ms period.
	NanoCPUs int64
	// StopGracePeriod is how long Stop waits after SIGTERM when it is given
	// no grace period; default 10s.
	StopGracePeriod time.Duration
	// CapAdd and CapDrop change the container's capabilities from docker's
	// default set (CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW,
	// SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL,
	// AUDIT_WRITE). Names are like "NET_ADMIN" or "CAP_NET_ADMIN"; CapDrop
	// may hold "ALL" to start from no capabilities. Drops apply before adds.
	// As in docker, a process running as a non-root user gets no effective
	// or permitted capabilities; these fields then only set its bounding set.
	CapAdd  []string
	CapDrop []string
	// NetNSPath, if set, is a network namespace (a bind mount such as
	// pkg/network makes) that the container joins instead of getting an
	// empty one of its own.
	NetNSPath string
	// StopSignal overrides the image's STOPSIGNAL (default SIGTERM): a name
	// like "SIGQUIT" or "QUIT", or a number.
	StopSignal string
	// Init runs a tiny init as the container's pid 1 that forwards signals
	// to the command and reaps zombies (docker run --init).
	Init bool
	// Healthcheck overrides the image's HEALTHCHECK; nil keeps the image's,
	// Test ["NONE"] disables it.
	Healthcheck *HealthConfig

	// Sandbox options (see sandbox.go, mounts.go, rlimit.go, seccomp*.go).

	// SeccompUnconfined runs the container without the default seccomp
	// profile (docker --security-opt seccomp=unconfined).
	SeccompUnconfined bool
	// ReadonlyRootfs mounts the container's root read-only (docker
	// --read-only); mounts, /dev, /etc/hosts, /etc/hostname and
	// /etc/resolv.conf stay writable.
	ReadonlyRootfs bool
	// Mounts are bind, named volume and tmpfs mounts, applied in order.
	Mounts []Mount
	// ExtraHosts are lines added to /etc/hosts after localhost and the
	// container's own name: "IP name [alias...]".
	ExtraHosts []string
	// DNSServers, DNSSearch and DNSOptions make /etc/resolv.conf. Without
	// DNSServers the host's resolv.conf is used minus loopback nameservers
	// (which do not answer inside the container's network namespace), and
	// Google's public resolvers when none remain, as docker does.
	DNSServers []string
	DNSSearch  []string
	DNSOptions []string
	// Ulimits override the default rlimits (RLIMIT_NOFILE 1024:524288).
	Ulimits []Ulimit
	// Groups are supplementary groups (names from the image's /etc/group or
	// numeric gids) added to those of the user (docker --group-add).
	Groups []string
	// PidsLimit caps the number of processes and threads; 0 or -1 means
	// unlimited.
	PidsLimit int64
	// CPUShares is the relative CPU weight (cgroup v1 cpu.shares, mapped to
	// cpu.weight on v2); 0 means the kernel default (1024). The agent
	// derives it from a CPU reservation as swarm does: NanoCPUs*1024/1e9.
	CPUShares int64
}

// defaultPath is set when neither the image nor the spec sets PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultStopGrace is docker's default stop timeout.
const defaultStopGrace = 10 * time.Second

// isName reports whether s matches ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ with
// minLen <= len(s) <= maxLen. Checked by hand rather than by a package
// regexp: every shim, init and exec helper process would compile it at
// start (a {0,127} repetition is a large program), on the path of every
// container start.
func isName(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen || len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

func validID(id string) error {
	if !isName(id, 1, 128) {
		return fmt.Errorf("%w: ID %q: want 1-128 of [a-zA-Z0-9_.-], not starting with '.', '_' or '-'", ErrInvalidSpec, id)
	}
	return nil
}

func (s *ContainerSpec) validate() error {
	if err := validID(s.ID); err != nil {
		return err
	}
	if s.Image == "" {
		return fmt.Errorf("%w: Image is empty", ErrInvalidSpec)
	}
	if s.MemoryLimit < 0 {
		return fmt.Errorf("%w: MemoryLimit %d is negative", ErrInvalidSpec, s.MemoryLimit)
	}
	if s.NanoCPUs < 0 {
		return fmt.Errorf("%w: NanoCPUs %d is negative", ErrInvalidSpec, s.NanoCPUs)
	}
	if s.NanoCPUs > 0 && s.NanoCPUs < 1e9/cfsPeriod {
		return fmt.Errorf("%w: NanoCPUs %d is below the minimum %d", ErrInvalidSpec, s.NanoCPUs, int64(1e9/cfsPeriod))
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("%w: Env entry %q: want KEY=VALUE", ErrInvalidSpec, e)
		}
	}
	if _, err := resolveCaps(s.CapAdd, s.CapDrop); err != nil {
		return err
	}
	if s.StopSignal != "" {
		if _, err := ParseSignal(s.StopSignal); err != nil {
			return fmt.Errorf("%w: StopSignal: %w", ErrInvalidSpec, err)
		}
	}
	if _, err := resolveHealthcheck(s.Healthcheck, nil); err != nil {
		return err
	}
	return s.validateSandbox()
}

// process is what the container init executes, resolved from the spec and
// the image configuration.
type process = shim.Process

// resolveProcess merges spec over image config with docker's rules.
func resolveProcess(spec *ContainerSpec, img ImageConfig) (process, error) {
	var args []string
	if spec.Entrypoint != nil {
		args = append(args, spec.Entrypoint...)
		args = append(args, spec.Args...)
	} else {
		args = append(args, img.Entrypoint...)
		if len(spec.Args) > 0 {
			args = append(args, spec.Args...)
		} else {
			args = append(args, img.Cmd...)
		}
	}
	if len(args) == 0 || args[0] == "" {
		return process{}, fmt.Errorf("%w: no command: neither the spec nor image %q sets Entrypoint or Cmd", ErrInvalidSpec, spec.Image)
	}
	env := mergeEnv(img.Env, spec.Env)
	if !hasKey(env, "PATH") {
		env = append([]string{"PATH=" + defaultPath}, env...)
	}
	if !hasKey(env, "HOSTNAME") {
		env = append(env, "HOSTNAME="+hostname(spec.ID))
	}
	cwd := img.WorkingDir
	if spec.WorkingDir != "" {
		cwd = spec.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	if !strings.HasPrefix(cwd, "/") {
		return process{}, fmt.Errorf("%w: WorkingDir %q must be absolute", ErrInvalidSpec, cwd)
	}
	user := img.User
	if spec.User != "" {
		user = spec.User
	}
	return process{Args: args, Env: env, Cwd: cwd, User: user}, nil
}

// mergeEnv returns base with override applied by key, keeping base's order
// and appending new keys in override's order.
func mergeEnv(base, override []string) []string {
	out := make([]string, 0, len(base)+len(override))
	idx := map[string]int{}
	for _, list := range [][]string{base, override} {
		for _, e := range list {
			k, _, _ := strings.Cut(e, "=")
			if i, ok := idx[k]; ok {
				out[i] = e
				continue
			}
			idx[k] = len(out)
			out = append(out, e)
		}
	}
	return out
}

func hasKey(env []string, key string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			return true
		}
	}
	return false
}

// hostname is the container's hostname: its id, cut to HOST_NAME_MAX-1.
func hostname(id string) string {
	if len(id) > 63 {
		return id[:63]
	}
	return id
}
