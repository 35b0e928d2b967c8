//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/minke-io/minke/internal/clustertest"
)

// shimArg is os.Args[0] of a worker re-executed as a container's shim
// (runtime.ShimArg; not imported, to keep the harness free of the runtime).
const shimArg = "minke-shim"

// shimProcs lists the live shims of the given tasks. Shims live outside the
// container cgroups and outlive their worker by design.
func shimProcs(taskIDs []string) []hostProc {
	ents, _ := os.ReadDir("/proc")
	var out []hostProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		argv := procCmdline(pid)
		if len(argv) == 0 || argv[0] != shimArg {
			continue
		}
		// A shim works in its container's directory, named by the task ID.
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		task := filepath.Base(cwd)
		if !slices.Contains(taskIDs, task) {
			continue
		}
		ppid, state, err := clustertest.ProcStat(pid)
		if err != nil || clustertest.Exited(state) {
			continue
		}
		out = append(out, hostProc{Pid: pid, PPid: ppid, State: state, TaskID: task})
	}
	return out
}

// taskIDsOf lists the container (task) IDs among procs.
func taskIDsOf(procs []hostProc) []string {
	var ids []string
	for _, p := range procs {
		if !slices.Contains(ids, p.TaskID) {
			ids = append(ids, p.TaskID)
		}
	}
	return ids
}
