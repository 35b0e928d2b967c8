package runtime

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/minke-io/minke/internal/shim"
)

// os.Args[0] of the helper binary in its three roles; MaybeRunInit
// dispatches on it. The processes themselves are internal/shim.
const (
	// ShimArg: a container's shim, the parent of its init. It is started
	// by Container.Start in a session of its own and outlives the worker
	// that started it, so a worker can be restarted or upgraded while
	// containers keep running; it owns the container's stdout and stderr
	// (the log) and writes its exit status to exit.json. Everything else
	// goes through the files in the container directory and pidfds: the
	// worker signals the init directly (Kill, Stop), learns of the exit
	// when the shim process ends (pidfd readable), and reads exit.json. A
	// worker that starts later finds the shim through state.json and
	// adopts the container (Runtime.Adopt). A shim's working directory is
	// its container's directory (containers/<id>), which is how to tell
	// whose shim a process is.
	ShimArg = shim.ShimArg
	// InitArg: a container init, forked by the shim.
	InitArg = shim.InitArg
	// ExecArg: the helper that runs a command inside a running container
	// (a healthcheck probe), as `docker exec` does.
	ExecArg = shim.ExecArg
)

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
	stateFileName  = shim.StateFileName // stateFile: pids; written by the shim once the init runs
	configFileName = "config.json"      // containerRecord: what Adopt needs to rebuild a Container
	exitFileName   = shim.ExitFileName  // exitFile: written by the shim when the init has exited
	shimLogName    = shim.ShimLogName   // the shim's own diagnostics
)

// The shim protocol (internal/shim).
type (
	shimConfig  = shim.Config
	initConfig  = shim.InitConfig
	shimReady   = shim.Ready
	stateFile   = shim.StateFile
	exitFile    = shim.ExitFile
	startPhases = shim.StartPhases
)

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

func writeJSONFile(path string, v any) error { return shim.WriteJSONFile(path, v) }

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
