package runtime

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ShimArg is os.Args[0] of the helper binary re-executed as a container's
// shim. MaybeRunInit dispatches to it. A shim's working directory is its
// container's directory (containers/<id>), which is how to tell whose
// shim a process is.
const ShimArg = "minke-shim"

// The shim is the parent of one container's init. It is started by
// Container.Start in a session of its own and outlives the worker that
// started it, so a worker can be restarted or upgraded while containers
// keep running. It
//   - starts the init (cgroup, namespaces) and reports its pid or why it
//     could not start;
//   - owns the container's stdout and stderr and writes them to the log as
//     JSON lines, rotating by size;
//   - waits for the init and, before it exits, writes its exit status to
//     exit.json, which outlives the shim and any worker process.
//
// Everything else goes through the files in the container directory and
// pidfds: the worker signals the init directly (Kill, Stop), learns of the
// exit when the shim process ends (pidfd readable), and reads exit.json.
// A worker that starts later finds the shim through state.json and adopts
// the container (Runtime.Adopt).

// ExecArg is os.Args[0] of the helper binary re-executed to run a command
// inside a running container (a healthcheck probe), as `docker exec` does.
// MaybeRunInit dispatches to it.
const ExecArg = "minke-exec"

// HelperName is the file name of the small helper binary (cmd/minke-shim)
// that Runtime prefers to run as shim, init and exec helper when it sits
// next to the running executable.
const HelperName = "minke-shim"

// helperBinary picks the program re-executed for shims, inits and exec
// helpers (see Config.HelperBinary).
func helperBinary(configured string) string {
	if configured != "" {
		return configured
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), HelperName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return "/proc/self/exe"
}

// Files of the shim protocol in the container directory.
const (
	stateFileName  = "state.json"  // stateFile: pids; written by the shim once the init runs
	configFileName = "config.json" // containerRecord: what Adopt needs to rebuild a Container
	exitFileName   = "exit.json"   // exitFile: written by the shim when the init has exited
	shimLogName    = "shim.log"    // the shim's own diagnostics
)

// Child file descriptors of the shim (after stdin, stdout, stderr).
const (
	shimConfigFD = 3 // read: shimConfig as JSON, then EOF
	shimReadyFD  = 4 // write: shimReady as JSON, then EOF
)

// shimConfig is sent to the shim over its config pipe.
type shimConfig struct {
	ID           string     `json:"id"`
	Dir          string     `json:"dir"`
	CgroupMount  string     `json:"cgroup_mount"`
	CgroupParent string     `json:"cgroup_parent"`
	Init         initConfig `json:"init"`
	LogMaxSize   int64      `json:"log_max_size"`
	LogMaxFiles  int        `json:"log_max_files"`
}

// shimReady is the shim's answer to Start: the init's pid once it has
// exec'd the command, or the init's error.
type shimReady struct {
	Error  string `json:"error,omitempty"`
	State  stateFile
	Phases startPhases `json:"phases"`
}

// stateFile is persisted so that a later worker process can find the
// container's processes: the shim to wait on, the init to signal. Each pid
// comes with its start time (/proc/PID/stat), which tells the process from
// a later one that reuses the pid.
type stateFile struct {
	ID        string `json:"id"`
	Pid       int    `json:"pid,omitempty"`
	PidStart  uint64 `json:"pid_start,omitempty"`
	ShimPid   int    `json:"shim_pid,omitempty"`
	ShimStart uint64 `json:"shim_start,omitempty"`
}

// exitFile is the container's exit as the shim saw it.
type exitFile struct {
	ExitCode int            `json:"exit_code"`
	Signal   syscall.Signal `json:"signal,omitempty"`
	ExitedAt time.Time      `json:"exited_at"`
}

// containerRecord is written at Create: the spec and what was resolved
// from the image, so that Adopt can rebuild the Container.
type containerRecord struct {
	Spec        ContainerSpec  `json:"spec"`
	Process     process        `json:"process"`
	Caps        capMask        `json:"caps"`
	Layers      []string       `json:"layers"`
	StopSignal  syscall.Signal `json:"stop_signal"`
	Healthcheck *HealthConfig  `json:"healthcheck,omitempty"`
	StartedAt   time.Time      `json:"started_at"`
}

// execResult is how a command run inside a container ended.
type execResult struct {
	ExitCode int
	Output   string // the end of stdout and stderr, at most healthOutputMax bytes
}

// errExecTimeout means the command ran past its timeout and was killed.
var errExecTimeout = errors.New("timed out")

func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (r *Runtime) readState(id string) (stateFile, error) {
	var s stateFile
	err := readJSONFile(filepath.Join(r.containerDir(id), stateFileName), &s)
	return s, err
}
