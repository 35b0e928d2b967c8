//go:build linux

package ha

import (
	"bufio"
	"errors"
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

// Containers outlive their manager's process by design (and live in
// network namespaces of their own, which the harness does not see), so a
// test whose managers ran --worker removes them itself. The runtime puts
// each container in the cgroup <hierarchy>/minke/<node id>/<task id>.

// removeContainers kills the processes in the nodes' cgroups, reaps them
// (the test binary is their subreaper), unmounts what is mounted below dir
// and removes the cgroups. What it cannot remove fails the test.
func removeContainers(t testing.TB, dir string, nodeIDs []string) {
	var cgroups []string
	for _, m := range cgroupMounts() {
		for _, id := range nodeIDs {
			d := filepath.Join(m, "minke", id)
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				cgroups = append(cgroups, cgroupTree(d)...)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		live := 0
		for _, cg := range cgroups {
			for _, pid := range cgroupPids(cg) {
				live++
				_ = syscall.Kill(pid, syscall.SIGKILL)
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			}
		}
		if live == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("cleanup: container processes still alive in %v", cgroups)
			break
		}
		time.Sleep(pollInterval)
	}
	for _, mp := range mountsUnder(dir) {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			t.Errorf("cleanup: unmounting %s: %v", mp, err)
		}
	}
	for _, cg := range cgroups {
		if err := syscall.Rmdir(cg); err != nil && !errors.Is(err, syscall.ENOENT) {
			t.Errorf("cleanup: removing cgroup %s: %v", cg, err)
		}
	}
}

// cgroupMounts lists the mount points of every cgroup hierarchy.
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
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		out = append(out, [2]string{unescapeMount(fields[4]), fields[sep+1]})
	}
	return out
}

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
