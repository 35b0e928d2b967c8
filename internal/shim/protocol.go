// Package shim is the container side of the runtime (pkg/runtime): the
// shim that owns a container's stdio and exit status, the container init
// that sets up its namespaces and execs the command, and the exec helper
// that runs a command inside a running container.
//
// These run as separate processes of a helper binary (cmd/minke-shim), one
// init per container start, so the package links only the standard library,
// golang.org/x/sys/unix and filepath-securejoin: whatever this package
// imports is started (runtime and package init) on every container start.
// Everything that can be decided before the start (seccomp filter, mounts,
// cgroup paths, rlimits) is resolved by the worker and sent as data.
//
// This file is the protocol between a worker (pkg/runtime) and these
// processes: argv[0] of each role, child file descriptors, the JSON sent
// over the config pipes, and the files left in the container directory.
package shim

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// os.Args[0] of the helper binary in each role; Main dispatches on it.
const (
	// ShimArg: a container's shim (see runShim). A shim's working
	// directory is its container's directory (containers/<id>), which is
	// how to tell whose shim a process is.
	ShimArg = "minke-shim"
	// InitArg: a container init, forked by the shim.
	InitArg = "minke-init"
	// ExecArg: the helper that runs a command inside a running container
	// (a healthcheck probe), as `docker exec` does.
	ExecArg = "minke-exec"
)

// Files of the shim protocol in the container directory.
const (
	StateFileName = "state.json" // StateFile: pids; written by the shim once the init runs
	ExitFileName  = "exit.json"  // ExitFile: written by the shim when the init has exited
	ShimLogName   = "shim.log"   // the shim's own diagnostics
)

// Child file descriptors of the shim (after stdin, stdout, stderr).
const (
	ShimConfigFD = 3 // read: Config as JSON, then EOF
	ShimReadyFD  = 4 // write: Ready as JSON, then EOF
)

// Child file descriptors of the init (after stdin, stdout, stderr).
const (
	initConfigFD = 3 // read: InitConfig as JSON, then EOF
	initErrorFD  = 4 // write: a failure message; closed on exec (EOF = success)
)

// Child file descriptors of the exec helper, as for the init, and a pidfd
// of the container's init: the helper lives in the container's PID
// namespace, where the init's pid in the worker's means nothing.
const (
	ExecConfigFD = 3
	ExecErrorFD  = 4
	ExecPidFD    = 5
)

// Config is sent to the shim over its config pipe.
type Config struct {
	ID  string `json:"id"`
	Dir string `json:"dir"`
	// Cgroup is where the init is born.
	Cgroup      Cgroup     `json:"cgroup"`
	Init        InitConfig `json:"init"`
	LogMaxSize  int64      `json:"log_max_size"`
	LogMaxFiles int        `json:"log_max_files"`
}

// Cgroup says where a process is born (StartInCgroup): the container's
// cgroup, already created by the worker.
type Cgroup struct {
	// Version is 1 (one directory per controller hierarchy) or 2.
	Version int `json:"version"`
	// Mount is the v1 hierarchies' parent directory (/sys/fs/cgroup),
	// where the forking thread finds its way back.
	Mount string `json:"mount,omitempty"`
	// Dirs are the container's cgroup directories: on v1 one per
	// controller (Controllers[i] is Dirs[i]'s), on v2 exactly one.
	Dirs        []string `json:"dirs"`
	Controllers []string `json:"controllers,omitempty"`
}

// InitConfig is sent to the container init over its config pipe.
type InitConfig struct {
	Rootfs   string  `json:"rootfs"`
	Hostname string  `json:"hostname"`
	Process  Process `json:"process"`
	// Caps is the bounding set, and the effective and permitted sets when
	// the process runs as uid 0 (bit n: capability n).
	Caps uint64 `json:"caps"`
	// NetNS is a network namespace to join (setns) instead of the new one.
	NetNS string `json:"netns,omitempty"`
	// Init runs the command under a reaper that stays pid 1 (--init).
	Init bool `json:"init,omitempty"`
	// Sandbox holds seccomp, mounts, rlimits and groups.
	Sandbox SandboxConfig `json:"sandbox"`
}

// Process is the command a container runs, resolved from spec and image.
type Process struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Cwd  string   `json:"cwd"`
	User string   `json:"user"` // resolved by the init against the rootfs
}

// SandboxConfig is what confines a container's processes besides
// namespaces and capabilities.
type SandboxConfig struct {
	// Seccomp is the compiled filter (struct sock_filter array, native
	// endian), or nil for none.
	Seccomp        []byte   `json:"seccomp,omitempty"`
	ReadonlyRootfs bool     `json:"readonly_rootfs,omitempty"`
	Mounts         []Mount  `json:"mounts,omitempty"`
	Rlimits        []Rlimit `json:"rlimits,omitempty"`
	// Groups are supplementary groups to resolve in the image's /etc/group.
	Groups []string `json:"groups,omitempty"`
}

// Mount is one resolved mount for the init.
type Mount struct {
	// Type is "bind" (Source is a host path) or "tmpfs".
	Type     string `json:"type"`
	Source   string `json:"source,omitempty"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readonly,omitempty"`
	// Data holds tmpfs options (size=, mode=).
	Data string `json:"data,omitempty"`
	// CopyUp asks the init to copy what the image has at Target into the
	// (new, empty) volume at Source before mounting it, as docker does.
	CopyUp bool `json:"copy_up,omitempty"`
}

// Rlimit is one resource limit the init sets before exec.
type Rlimit struct {
	Resource int    `json:"resource"`
	Soft     uint64 `json:"soft"`
	Hard     uint64 `json:"hard"`
	// Default marks a limit the spec did not ask for: if the worker cannot
	// raise its hard limit that far (no CAP_SYS_RESOURCE), it is capped at
	// the worker's instead of failing the container.
	Default bool `json:"default,omitempty"`
}

// RlimitNames maps docker's ulimit names to RLIMIT_* numbers (Linux ABI,
// asm-generic/resource.h, the same on every architecture Go supports here).
var RlimitNames = map[string]int{
	"cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5,
	"nproc": 6, "nofile": 7, "memlock": 8, "as": 9, "locks": 10,
	"sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
}

// Ready is the shim's answer to a start: the init's pid once it has
// exec'd the command, or the init's error.
type Ready struct {
	Error  string      `json:"error,omitempty"`
	State  StateFile   `json:"State"`
	Phases StartPhases `json:"phases"`
}

// StateFile is persisted so that a later worker process can find the
// container's processes: the shim to wait on, the init to signal. Each pid
// comes with its start time (/proc/PID/stat), which tells the process from
// a later one that reuses the pid.
type StateFile struct {
	ID        string `json:"id"`
	Pid       int    `json:"pid,omitempty"`
	PidStart  uint64 `json:"pid_start,omitempty"`
	ShimPid   int    `json:"shim_pid,omitempty"`
	ShimStart uint64 `json:"shim_start,omitempty"`
}

// ExitFile is the container's exit as the shim saw it.
type ExitFile struct {
	ExitCode int            `json:"exit_code"`
	Signal   syscall.Signal `json:"signal,omitempty"`
	ExitedAt time.Time      `json:"exited_at"`
}

// ExecConfig is sent to the exec helper over its config pipe.
type ExecConfig struct {
	Process Process `json:"process"`
	Caps    uint64  `json:"caps"`
	// Sandbox carries the container's seccomp filter, rlimits and groups:
	// a process run inside the container gets the same ones, as with docker
	// exec (with the filter, or the container could ptrace it to make the
	// calls the filter denies).
	Sandbox SandboxConfig `json:"sandbox"`
}

var errMalformedStat = errors.New("malformed")

// CapNames are the Linux capabilities by number (linux/capability.h),
// without the CAP_ prefix. The numbers are kernel ABI; they are spelled out
// here so that specs validate the same way on every OS.
var CapNames = [...]string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
	"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
	"NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
	"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// capName is capability c's name, with the CAP_ prefix.
func capName(c int) string {
	if c < len(CapNames) {
		return "CAP_" + CapNames[c]
	}
	return "CAP_" + strconv.Itoa(c)
}

// HelperEnv is the environment of the shim, init and exec helper
// processes (never the container's: the init execs the command with the
// spec's). One P: none of them runs anything in parallel, and the Go
// runtime then skips reading the cgroup CPU limit at start and starts
// fewer threads, which matters for the init, forked on every start.
func HelperEnv() []string { return []string{"GOMAXPROCS=1"} }

// HasKey reports whether env sets key.
func HasKey(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// PidStartTime is field 22 of /proc/<pid>/stat: the process start time in
// clock ticks since boot, which tells a process from a later one that
// reuses its pid.
func PidStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, &os.PathError{Op: "parse", Path: "/proc/" + strconv.Itoa(pid) + "/stat", Err: errMalformedStat}
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, &os.PathError{Op: "parse", Path: "/proc/" + strconv.Itoa(pid) + "/stat", Err: errMalformedStat}
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// WriteJSONFile writes v as JSON to path atomically (a temporary file in
// the same directory, renamed). It does not fsync: the files of the shim
// protocol have to survive the worker process, not the machine; after a
// machine crash no container runs on.
func WriteJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

// WriteFileAtomic writes b to path (mode 0644) atomically.
func WriteFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}
