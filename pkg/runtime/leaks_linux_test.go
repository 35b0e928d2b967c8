package runtime

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// assertNoLeaks checks that nothing of container id is left on the host
// once it was removed: no mount below its directory, no directory, no
// cgroup in any hierarchy, and no process of this test binary started for
// it (shim, init, exec helper). It looks only at what belongs to id in r,
// so containers of concurrent tests (or other users) do not disturb it.
func assertNoLeaks(t *testing.T, r *Runtime, id string) {
	t.Helper()
	dir := r.containerDir(id)
	for _, m := range mountsBelow(t, dir) {
		t.Errorf("leak: %s still mounted", m)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("leak: container directory %s still exists", dir)
	}
	for _, cg := range cgroupDirs(r, id) {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("leak: cgroup %s still exists", cg)
		}
	}
	for _, p := range runtimeProcs(t, id) {
		t.Errorf("leak: process %d (%s) still runs", p.pid, p.cmd)
	}
}

func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}

// cgroupDirs are the directories id's cgroup has (or had) on this host.
func cgroupDirs(r *Runtime, id string) []string {
	switch cg := r.cgroups.(type) {
	case *cgroupV1:
		var out []string
		for _, ctrl := range v1Controllers {
			out = append(out, cg.dir(ctrl, id))
		}
		return out
	default:
		return []string{filepath.Dir(r.cgroups.MemoryLimitFile(id))}
	}
}

type procInfo struct {
	pid int
	cmd string
}

// runtimeProcs lists live processes running this test binary as shim or
// exec helper of container id (an init that got as far as running is the
// container's command, and is caught by the cgroup check).
func runtimeProcs(t *testing.T, id string) []procInfo {
	t.Helper()
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err != nil || exe != self {
			continue // gone, a zombie (no exe), or another program
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		cwd, _ := os.Readlink("/proc/" + e.Name() + "/cwd")
		shimOf := argv[0] == ShimArg && (strings.HasSuffix(cwd, "/containers/"+id) || strings.Contains(cwd, "/trash/"+id+"-"))
		if shimOf || (len(argv) >= 2 && argv[1] == id && argv[0] == ExecArg) {
			out = append(out, procInfo{pid, strings.Join(argv, " ") + " in " + cwd})
		}
	}
	return out
}
