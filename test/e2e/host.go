//go:build linux

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// This file reads what the host sees of a cluster's containers: processes
// (by cgroup), cgroup directories and mounts. It relies on the runtime's
// layout: each container's cgroup is <hierarchy>/minke/<node id>/<task id>.

// cgroupParent is the worker's default --cgroup-parent.
const cgroupParent = "minke"

// hostProc is a process of the host that belongs to a container.
type hostProc struct {
	Pid    int
	PPid   int
	State  byte   // as in /proc/PID/stat: R, S, Z, …
	NodeID string // from its cgroup path
	TaskID string // = container id
}

// Zombie reports whether the process has exited but was not reaped yet.
func (p hostProc) Zombie() bool { return p.State == 'Z' || p.State == 'X' }

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
		ppid, state, err := procStat(pid)
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
			if parts[i] == cgroupParent && slices.Contains(nodeIDs, parts[i+1]) {
				return parts[i+1], parts[i+2], true
			}
		}
	}
	return "", "", false
}

// procStat returns the parent pid and state letter of pid.
func procStat(pid int) (ppid int, state byte, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("odd /proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("odd /proc/%d/stat: %q", pid, s)
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err
}

// procCmdline returns the argv of pid.
func procCmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	MountPoint string
	FSType     string
	SuperOpts  string
}

func readMountInfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional…] - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+3 > len(fields) {
			continue
		}
		m := mountInfo{MountPoint: unescapeMount(fields[4]), FSType: fields[sep+1]}
		if sep+3 < len(fields) {
			m.SuperOpts = fields[sep+3]
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, …).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsUnder returns the mount points strictly below dir, deepest first.
func mountsUnder(dir string) []mountInfo {
	ms, _ := readMountInfo()
	var out []mountInfo
	for _, m := range ms {
		if strings.HasPrefix(m.MountPoint, dir+"/") {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b mountInfo) int { return len(b.MountPoint) - len(a.MountPoint) })
	return out
}

// cgroupMounts returns the mount points of every cgroup hierarchy (v1 and
// v2) on the host.
func cgroupMounts() []mountInfo {
	ms, _ := readMountInfo()
	var out []mountInfo
	for _, m := range ms {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, m)
		}
	}
	return out
}

// nodeCgroupDirs returns <hierarchy>/minke/<nodeID> in every hierarchy
// where it exists.
func nodeCgroupDirs(nodeID string) []string {
	var out []string
	for _, m := range cgroupMounts() {
		d := filepath.Join(m.MountPoint, cgroupParent, nodeID)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// containerCgroupDirs returns the container cgroups (subdirectories of the
// node cgroups) of nodeID in every hierarchy.
func containerCgroupDirs(nodeID string) []string {
	var out []string
	for _, d := range nodeCgroupDirs(nodeID) {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.IsDir() {
				out = append(out, filepath.Join(d, e.Name()))
			}
		}
	}
	return out
}

// cgroupTree returns dir and every cgroup below it, deepest first.
func cgroupTree(dir string) []string {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return dirs
}

// cgroupPids reads the pids in one cgroup.
func cgroupPids(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// memoryLimitOf reads the memory limit of the cgroup pid is in, and the
// file it read: memory.limit_in_bytes on v1, memory.max on v2.
func memoryLimitOf(pid int) (limit int64, file string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0, "", err
	}
	mounts := cgroupMounts()
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

// becomeSubreaper makes this process the reaper of its orphaned
// descendants. A SIGKILLed manager's containers then become children of
// the test binary, which reaps them in cleanup, instead of the machine's
// pid 1, which may never reap them.
func becomeSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return errno
	}
	return nil
}

// reapIfChild reaps pid if it is an exited child of this process; it never
// blocks.
func reapIfChild(pid int) {
	ppid, state, err := procStat(pid)
	if err != nil || ppid != os.Getpid() || (state != 'Z' && state != 'X') {
		return
	}
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

// unmount detaches the mount at target.
func unmount(target string) error {
	err := syscall.Unmount(target, syscall.MNT_DETACH)
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
		return nil // not (or no longer) a mount point
	}
	return err
}
