//go:build linux

package failoverbench

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
	"testing"
	"time"
)

// The runtime puts each container in the cgroup
// <hierarchy>/minke/<node id>/<task id> (the worker's default
// --cgroup-parent) and starts it with setsid in new PID and network
// namespaces: a container is neither in its worker's process group nor in
// its host's network namespace, so netharness does not see it. This file
// finds, kills and removes containers by their node's cgroups.

const cgroupParent = "minke"

// becomeSubreaper makes this process the reaper of its orphaned
// descendants: the containers of a killed worker become our children, and
// killContainers reaps them instead of leaving zombies to pid 1.
func becomeSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return errno
	}
	return nil
}

// nodeCgroups returns <hierarchy>/minke/<id> and every cgroup below it, in
// every hierarchy, deepest first.
func nodeCgroups(nodeIDs ...string) []string {
	var out []string
	for _, m := range cgroupMounts() {
		for _, id := range nodeIDs {
			d := filepath.Join(m, cgroupParent, id)
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				out = append(out, cgroupTree(d)...)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out
}

// livePids lists the processes in the node's container cgroups that have
// not exited (zombies excluded: they run nothing).
func livePids(nodeIDs ...string) []int {
	var out []int
	for _, cg := range nodeCgroups(nodeIDs...) {
		for _, pid := range cgroupPids(cg) {
			if st := procState(pid); st != "" && st != "Z" && st != "X" && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// killContainers SIGKILLs every process in the nodes' cgroups, and reaps
// the ones that are our children, until none is left or bound passes. It
// returns how many live processes it found at first.
func killContainers(bound time.Duration, nodeIDs ...string) (found int, err error) {
	deadline := time.Now().Add(bound)
	first := true
	for {
		// A pid is listed once per hierarchy (cgroup v1): count it once.
		live := map[int]bool{}
		for _, cg := range nodeCgroups(nodeIDs...) {
			for _, pid := range cgroupPids(cg) {
				if st := procState(pid); st != "Z" && st != "X" {
					live[pid] = true
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				reap(pid)
			}
		}
		if first {
			found, first = len(live), false
		}
		if len(live) == 0 {
			return found, nil
		}
		if time.Now().After(deadline) {
			return found, fmt.Errorf("container processes of nodes %v still alive after %s: %v", nodeIDs, bound, livePids(nodeIDs...))
		}
		time.Sleep(5 * time.Millisecond) // the kernel delivering SIGKILL; re-checked above
	}
}

// reap collects pid if it is an exited child of ours; it never blocks and
// never waits for anyone else (os/exec owns its own children).
func reap(pid int) {
	if procPPid(pid) != os.Getpid() {
		return
	}
	if st := procState(pid); st != "Z" && st != "X" {
		return
	}
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

// removeContainers kills what runs in the nodes' cgroups, unmounts what is
// mounted below dir (the containers' overlay roots) and removes the
// cgroups. What it cannot remove fails the benchmark.
func removeContainers(tb testing.TB, dir string, nodeIDs []string) {
	if _, err := killContainers(10*time.Second, nodeIDs...); err != nil {
		tb.Errorf("cleanup: %v", err)
	}
	for _, mp := range mountsUnder(dir) {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			tb.Errorf("cleanup: unmounting %s: %v", mp, err)
		}
	}
	for _, cg := range nodeCgroups(nodeIDs...) {
		if err := removeCgroup(cg); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	}
}

// removeCgroup removes an empty cgroup, retrying while the kernel still
// counts an exiting process in it.
func removeCgroup(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("removing cgroup %s (pids %v): %w", dir, cgroupPids(dir), err)
		}
		for _, pid := range cgroupPids(dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			reap(pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroupMounts lists the mount points of every cgroup hierarchy (v1, v2).
func cgroupMounts() []string {
	var out []string
	for _, m := range mountInfo() {
		if m[1] == "cgroup" || m[1] == "cgroup2" {
			out = append(out, m[0])
		}
	}
	return out
}

// mountsUnder lists mount points strictly below dir, deepest first.
func mountsUnder(dir string) []string {
	var out []string
	for _, m := range mountInfo() {
		if strings.HasPrefix(m[0], dir+"/") {
			out = append(out, m[0])
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// mountInfo returns (mount point, fs type) pairs of /proc/self/mountinfo.
func mountInfo() [][2]string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional…] - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		out = append(out, [2]string{unescapeMount(fields[4]), fields[sep+1]})
	}
	return out
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

// cgroupTree returns dir and every cgroup below it.
func cgroupTree(dir string) []string {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	return dirs
}

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

// procStat returns the fields of /proc/PID/stat after the command name
// (state is [0], ppid [1]), or nil if the process has gone.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func procState(pid int) string {
	if f := procStat(pid); len(f) > 0 {
		return f[0]
	}
	return ""
}

func procPPid(pid int) int {
	if f := procStat(pid); len(f) > 1 {
		n, _ := strconv.Atoi(f[1])
		return n
	}
	return 0
}
