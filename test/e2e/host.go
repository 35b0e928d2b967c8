//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/minke-io/minke/internal/clustertest"
)

// This file reads what the host sees of a cluster's containers: processes
// (by cgroup) and cgroup directories. It relies on the runtime's layout:
// each container's cgroup is <hierarchy>/minke/<node id>/<task id>.

// hostProc is a process of the host that belongs to a container.
type hostProc struct {
	Pid    int
	PPid   int
	State  byte   // as in /proc/PID/stat: R, S, Z, …
	NodeID string // from its cgroup path
	TaskID string // = container id
}

// Zombie reports whether the process has exited but was not reaped yet.
func (p hostProc) Zombie() bool { return clustertest.Exited(p.State) }

// containerProcs lists the processes in the container cgroups of the given
// nodes, zombies included.
func containerProcs(nodeIDs []string) []hostProc {
	ents, _ := os.ReadDir("/proc")
	var out []hostProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		node, task, ok := containerOf(pid, nodeIDs)
		if !ok {
			continue
		}
		ppid, state, err := clustertest.ProcStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		out = append(out, hostProc{Pid: pid, PPid: ppid, State: state, NodeID: node, TaskID: task})
	}
	return out
}

// liveContainerProcs is containerProcs without zombies: the machine's pid 1
// may never reap an orphan, and an exited process runs nothing.
func liveContainerProcs(nodeIDs []string) []hostProc {
	var out []hostProc
	for _, p := range containerProcs(nodeIDs) {
		if !p.Zombie() {
			out = append(out, p)
		}
	}
	return out
}

// containerOf finds, in /proc/PID/cgroup, a path …/minke/<node>/<task> with
// node one of nodeIDs.
func containerOf(pid int, nodeIDs []string) (node, task string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		parts := strings.Split(strings.Trim(f[2], "/"), "/")
		for i := 0; i+2 < len(parts); i++ {
			if parts[i] == clustertest.CgroupParent && slices.Contains(nodeIDs, parts[i+1]) {
				return parts[i+1], parts[i+2], true
			}
		}
	}
	return "", "", false
}

// procCmdline returns the argv of pid.
func procCmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// memoryLimitOf reads the memory limit of the cgroup pid is in, and the
// file it read: memory.limit_in_bytes on v1, memory.max on v2.
func memoryLimitOf(pid int) (limit int64, file string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0, "", err
	}
	mounts := clustertest.CgroupMounts()
	var v2path string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2path = f[2]
			continue
		}
		if !slices.Contains(strings.Split(f[1], ","), "memory") {
			continue
		}
		for _, m := range mounts {
			if m.FSType == "cgroup" && slices.Contains(strings.Split(m.SuperOpts, ","), "memory") {
				file = filepath.Join(m.MountPoint, f[2], "memory.limit_in_bytes")
				limit, err = readInt64(file)
				return limit, file, err
			}
		}
	}
	for _, m := range mounts {
		if m.FSType == "cgroup2" && v2path != "" {
			file = filepath.Join(m.MountPoint, v2path, "memory.max")
			if _, err := os.Stat(file); err == nil {
				limit, err = readInt64(file)
				return limit, file, err
			}
		}
	}
	return 0, "", fmt.Errorf("no memory cgroup found for pid %d in %q", pid, b)
}

func readInt64(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// nsOf returns the identity of pid's namespace of kind (pid, mnt, …), as
// the /proc/PID/ns link reads: "pid:[4026531836]".
func nsOf(pid int, kind string) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
}
