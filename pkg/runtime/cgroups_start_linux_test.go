package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/minke-io/minke/internal/shim"
)

// TestStartInCgroup starts a process with shim.StartInCgroup on the host's real
// cgroups (v1 hierarchies, and the cgroup2 tree when there is one) and
// checks that it is in the container's cgroup in every hierarchy, that it
// is the only task there (the forking thread went back), and that the
// cgroup can be deleted once the process is gone.
func TestStartInCgroup(t *testing.T) {
	requireRoot(t)
	parent := "minke-test-startin-" + strconv.Itoa(os.Getpid())
	type tc struct {
		name string
		cg   cgroupManager
		// tasks lists the thread ids in the container's cgroup
		tasks func(id string) []string
	}
	var cases []tc
	if v1, err := detectCgroups("/sys/fs/cgroup", parent); err == nil && v1.Version() == 1 {
		c := v1.(*cgroupV1)
		cases = append(cases, tc{"v1", c, func(id string) []string {
			var all []string
			for _, ctrl := range c.controllers() {
				b, _ := os.ReadFile(filepath.Join(c.dir(ctrl, id), "tasks"))
				all = append(all, strings.Fields(string(b))...)
			}
			return all
		}})
	}
	for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(m, "cgroup.procs")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(m, "cgroup.controllers")); err != nil {
			continue
		}
		// Only the directory operations of cgroupV2 are needed here.
		c := &cgroupV2{mount: m, parent: parent}
		cases = append(cases, tc{"v2", c, func(id string) []string {
			b, _ := os.ReadFile(filepath.Join(c.dir(id), "cgroup.threads"))
			return strings.Fields(string(b))
		}})
		break
	}
	if len(cases) == 0 {
		t.Skip("no cgroup hierarchy")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const id = "startin"
			var dirs []string
			switch c := tc.cg.(type) {
			case *cgroupV1:
				for _, ctrl := range c.controllers() {
					dirs = append(dirs, c.dir(ctrl, id), filepath.Dir(c.dir(ctrl, id)))
				}
			case *cgroupV2:
				dirs = append(dirs, c.dir(id), filepath.Dir(c.dir(id)))
			}
			for i := 0; i < len(dirs); i += 2 {
				if err := os.MkdirAll(dirs[i], 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() {
				for _, d := range dirs {
					os.Remove(d)
				}
			})
			cmd := exec.Command("/bin/cat") // waits on its stdin
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := shim.StartInCgroup(tc.cg.placement(id), cmd); err != nil {
				t.Fatal(err)
			}
			pid := strconv.Itoa(cmd.Process.Pid)
			b, err := os.ReadFile("/proc/" + pid + "/cgroup")
			if err != nil {
				t.Fatal(err)
			}
			want := "/" + parent + "/" + id
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			in := 0
			for _, l := range lines {
				f := strings.SplitN(l, ":", 3)
				if len(f) == 3 && f[2] == want {
					in++
				}
			}
			if tc.name == "v1" && in < 3 || tc.name == "v2" && in < 1 {
				t.Errorf("the process's cgroups:\n%s\nwant %s in every container hierarchy", b, want)
			}
			if tasks := tc.tasks(id); len(slices.Compact(slices.Sorted(slices.Values(tasks)))) != 1 || tasks[0] != pid {
				t.Errorf("tasks in the container's cgroup: %v, want only the child %s", tasks, pid)
			}
			self, _ := os.ReadFile("/proc/self/cgroup")
			if strings.Contains(string(self), want) {
				t.Errorf("the test process itself is in the container's cgroup:\n%s", self)
			}
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			if err := tc.cg.Delete(id); err != nil {
				t.Errorf("deleting the emptied cgroup: %v", err)
			}
		})
	}
}
