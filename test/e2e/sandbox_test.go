//go:build linux

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestSandboxOptions creates a service with the sandbox flags of `swarmctl
// service create` and checks, from the host, that the worker's container
// got them: seccomp off, a read-only root with a writable tmpfs, an
// /etc/hosts entry, the ulimit, the pids limit. Then the bad-input half: a
// user the image lacks fails the task with docker's message.
func TestSandboxOptions(t *testing.T) {
	c := NewCluster(t)
	c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "sbx",
		"--security-opt", "seccomp=unconfined", "--read-only",
		"--mount", "type=tmpfs,target=/scratch", "--mount", "type=volume,source=sbxvol,target=/data",
		"--add-host", "db:10.0.0.9", "--ulimit", "nofile=1000:2000", "--limit-pids", "64",
		"hello:latest")
	t.Cleanup(func() { c.Ctl("service", "rm", "sbx") })
	tasks := c.WaitRunning("sbx", 1, 60*time.Second)
	pid := int(tasks[0].GetStatus().GetContainer().GetPid())
	read := func(f string) string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if s := read("status"); !strings.Contains(s, "Seccomp:\t0") || !strings.Contains(s, "NoNewPrivs:\t1") {
		t.Errorf("seccomp=unconfined not applied:\n%s", s)
	}
	if l := lineContaining(read("limits"), "Max open files"); len(strings.Fields(l)) < 5 || strings.Fields(l)[4] != "2000" {
		t.Errorf("nofile hard limit: %q, want 2000", l)
	}
	if h := read("root/etc/hosts"); !strings.Contains(h, "10.0.0.9\tdb") {
		t.Errorf("/etc/hosts lacks the --add-host entry:\n%s", h)
	}
	mounts := read("mountinfo")
	var rootOpts, scratch, data string
	for _, l := range strings.Split(mounts, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		switch f[4] {
		case "/":
			rootOpts = f[5]
		case "/scratch":
			scratch = l
		case "/data":
			data = l
		}
	}
	if !strings.HasPrefix(rootOpts, "ro") {
		t.Errorf("root mounted %q, want ro", rootOpts)
	}
	if !strings.Contains(scratch, " - tmpfs ") || data == "" {
		t.Errorf("mounts missing: /scratch %q, /data %q", scratch, data)
	}
	if cg := read("cgroup"); !strings.Contains(cg, "pids:") {
		t.Logf("no pids controller on this host: %s", cg)
	} else if max := pidsMax(t, cg); max != "64" {
		t.Errorf("pids.max = %q, want 64", max)
	}

	t.Run("user not in image", func(t *testing.T) {
		c := c.With(t)
		const want = "unable to find user ghost"
		r := c.Ctl("service", "create", "--name", "ghost", "--user", "ghost", "hello:latest")
		t.Cleanup(func() { c.Ctl("service", "rm", "ghost") })
		if r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Errorf("want exit 1 and %q on stderr; got %s", want, r)
		}
		task := findTask(c.Tasks("ghost"), minkepb.TaskState_FAILED)
		if task == nil {
			t.Fatalf("no FAILED task: %v", c.Tasks("ghost"))
		}
		if !strings.Contains(task.GetStatus().GetErr(), want) {
			t.Errorf("task error %q, want it to contain %q", task.GetStatus().GetErr(), want)
		}
	})
	t.Run("bad mount refused by the API", func(t *testing.T) {
		c := c.With(t)
		r := c.Ctl("service", "create", "--mount", "type=bind,source=relative,target=/x", "hello:latest")
		checkOneLineError(t, r.Code, r.Stderr, "mounts[0]", `bind source "relative": want an absolute host path`)
	})
}

// pidsMax reads pids.max of the cgroup v1 pids hierarchy named in a
// /proc/PID/cgroup file.
func pidsMax(t *testing.T, cgroupFile string) string {
	t.Helper()
	for _, l := range strings.Split(cgroupFile, "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 && parts[1] == "pids" {
			b, err := os.ReadFile("/sys/fs/cgroup/pids" + parts[2] + "/pids.max")
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}
