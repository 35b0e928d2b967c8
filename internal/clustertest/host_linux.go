package clustertest

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

// CgroupParent is the worker's default --cgroup-parent: a node's
// containers live in <hierarchy>/CgroupParent/<node id>/<task id>.
const CgroupParent = "minke"

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	MountPoint string
	FSType     string
	SuperOpts  string
}

// Mounts reads /proc/self/mountinfo.
func Mounts() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional…] - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		m := Mount{MountPoint: unescapeMount(fields[4]), FSType: fields[sep+1]}
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

// MountsUnder returns the mounts strictly below dir, deepest first.
func MountsUnder(dir string) []Mount {
	ms, _ := Mounts()
	var out []Mount
	for _, m := range ms {
		if strings.HasPrefix(m.MountPoint, dir+"/") {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Mount) int { return len(b.MountPoint) - len(a.MountPoint) })
	return out
}

// Unmount detaches the mount at target; that target is not (or no longer)
// a mount point is no error.
func Unmount(target string) error {
	err := syscall.Unmount(target, syscall.MNT_DETACH)
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}

// CgroupMounts returns the mounts of every cgroup hierarchy (v1 and v2).
func CgroupMounts() []Mount {
	ms, _ := Mounts()
	var out []Mount
	for _, m := range ms {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, m)
		}
	}
	return out
}

// NodeCgroupDirs returns <hierarchy>/minke/<nodeID> in every hierarchy
// where it exists.
func NodeCgroupDirs(nodeID string) []string {
	var out []string
	for _, m := range CgroupMounts() {
		d := filepath.Join(m.MountPoint, CgroupParent, nodeID)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// NodeCgroups returns the node cgroups of nodeIDs and every cgroup below
// them, in every hierarchy, deepest first.
func NodeCgroups(nodeIDs ...string) []string {
	var out []string
	for _, id := range nodeIDs {
		for _, d := range NodeCgroupDirs(id) {
			out = append(out, CgroupTree(d)...)
		}
	}
	slices.SortFunc(out, byDepth)
	return out
}

// CgroupTree returns dir and every cgroup below it, deepest first.
func CgroupTree(dir string) []string {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.SortFunc(dirs, byDepth)
	return dirs
}

func byDepth(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") }

// CgroupPids reads the pids in one cgroup (none if it is gone).
func CgroupPids(dir string) []int {
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

// ProcStat returns the parent pid and state letter (R, S, Z, …) of pid
// from /proc/PID/stat; an error if the process has gone.
func ProcStat(pid int) (ppid int, state byte, err error) {
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

// Exited reports whether a ProcStat state is that of a process that has
// exited but was not reaped yet (a zombie).
func Exited(state byte) bool { return state == 'Z' || state == 'X' }

// BecomeSubreaper makes this process the reaper of its orphaned
// descendants: the containers of a killed node then become children of
// the test binary, which reaps them (ReapIfChild), instead of the
// machine's pid 1, which may never reap them.
func BecomeSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return errno
	}
	return nil
}

// ReapIfChild reaps pid if it is an exited child of this process; it
// never blocks and never waits for anyone else (os/exec owns its own
// children).
func ReapIfChild(pid int) {
	ppid, state, err := ProcStat(pid)
	if err != nil || ppid != os.Getpid() || !Exited(state) {
		return
	}
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

// ContainerCgroups returns the container cgroups of nodeID (the
// subdirectories of its node cgroups) in every hierarchy.
func ContainerCgroups(nodeID string) []string {
	var out []string
	for _, d := range NodeCgroupDirs(nodeID) {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.IsDir() {
				out = append(out, filepath.Join(d, e.Name()))
			}
		}
	}
	return out
}
