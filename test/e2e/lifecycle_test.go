//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
)

// TestServiceLifecycle drives one service through create, a crash, scale
// and rm on a manager that runs containers and a separate worker, and
// checks each step on the host itself: processes, namespaces, cgroups,
// mounts and directories.
func TestServiceLifecycle(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	w := c.StartWorker("w2", "127.0.0.2", c.JoinToken(), m)
	c.PushHello()

	c.MustCtl("service", "create", "--name", "web", "--replicas", "3", "--limit-memory", "64M",
		"--restart-delay", "0s", "hello:latest")
	// create without -d returns once 3/3 run: no waiting here.
	tasks := clustertest.Running(c.Tasks("web"))
	if len(tasks) != 3 {
		t.Fatalf("after create: %d running tasks, want 3: %v", len(tasks), tasks)
	}

	t.Run("isolated", func(t *testing.T) {
		c := c.With(t)
		const wantLimit = 64 << 20
		procs := c.ContainerProcs()
		if len(procs) != 3 {
			t.Fatalf("%d container processes on the host, want 3: %+v", len(procs), procs)
		}
		byTask := make(map[string]hostProc)
		for _, p := range procs {
			byTask[p.TaskID] = p
		}
		hostNS := map[string]string{}
		for _, kind := range []string{"pid", "mnt"} {
			ns, err := nsOf(os.Getpid(), kind)
			if err != nil {
				t.Fatal(err)
			}
			hostNS[kind] = ns
		}
		seen := map[string]string{} // namespace → task
		nodes := map[string]bool{}
		for _, task := range tasks {
			id := task.GetMeta().GetId()
			p, ok := byTask[id]
			if !ok {
				t.Errorf("task %s: no process in a cgroup named after it; processes: %+v", id, procs)
				continue
			}
			if got := int(task.GetStatus().GetContainer().GetPid()); got != p.Pid {
				t.Errorf("task %s: status says pid %d, its cgroup holds pid %d", id, got, p.Pid)
			}
			if p.NodeID != task.GetNodeId() {
				t.Errorf("task %s: assigned to node %s, its cgroup is under node %s", id, task.GetNodeId(), p.NodeID)
			}
			nodes[p.NodeID] = true
			if argv := procCmdline(p.Pid); len(argv) == 0 || argv[0] != "/hello" {
				t.Errorf("task %s: pid %d runs %q, want /hello", id, p.Pid, argv)
			}
			for _, kind := range []string{"pid", "mnt"} {
				ns, err := nsOf(p.Pid, kind)
				if err != nil {
					t.Fatal(err)
				}
				if ns == hostNS[kind] {
					t.Errorf("task %s: pid %d shares the host's %s namespace %s", id, p.Pid, kind, ns)
				}
				if other, dup := seen[ns]; dup {
					t.Errorf("tasks %s and %s share the %s namespace %s", other, id, kind, ns)
				}
				seen[ns] = id
			}
			limit, file, err := memoryLimitOf(p.Pid)
			if err != nil {
				t.Fatal(err)
			}
			if limit != wantLimit {
				t.Errorf("task %s: %s = %d, want %d (--limit-memory 64M)", id, file, limit, wantLimit)
			}
			if want := filepath.Join(clustertest.CgroupParent, p.NodeID, id); !strings.Contains(file, want) {
				t.Errorf("task %s: memory cgroup %s is not under %s", id, file, want)
			}
		}
		// The scheduler spreads 3 replicas over 2 empty nodes.
		if !nodes[m.NodeID] || !nodes[w.NodeID] {
			t.Errorf("tasks ran on nodes %v; want both the manager %s and the worker %s", nodes, m.NodeID, w.NodeID)
		}
	})

	t.Run("logs", func(t *testing.T) {
		c := c.With(t)
		c.Eventually(10*time.Second, "a hello line of every task in service logs", func() (bool, string) {
			out := c.MustCtl("service", "logs", "web")
			for _, task := range tasks {
				// The hostname is the container ID = the task ID.
				if want := "hello from " + task.GetMeta().GetId() + " pid 1"; !strings.Contains(out, want) {
					return false, fmt.Sprintf("no %q in:\n%s", want, out)
				}
			}
			return true, ""
		})
	})

	t.Run("restart after kill -9", func(t *testing.T) {
		c := c.With(t)
		victim := tasks[0]
		oldPid := int(victim.GetStatus().GetContainer().GetPid())
		if err := syscall.Kill(oldPid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c.Eventually(20*time.Second, fmt.Sprintf("slot %d replaced", victim.GetSlot()), func() (bool, string) {
			all := c.Tasks("web")
			var replaced, failed bool
			for _, task := range all {
				switch {
				case task.GetMeta().GetId() == victim.GetMeta().GetId():
					failed = task.GetStatus().GetState() == minkepb.TaskState_FAILED &&
						strings.Contains(task.GetStatus().GetErr(), "non-zero exit (137)")
				case task.GetSlot() == victim.GetSlot() && task.GetStatus().GetState() == minkepb.TaskState_RUNNING:
					replaced = int(task.GetStatus().GetContainer().GetPid()) != oldPid
				}
			}
			return replaced && failed, fmt.Sprintf("replaced=%v failed(137)=%v; tasks: %v", replaced, failed, all)
		})
		c.WaitRunning("web", 3, 10*time.Second)
		ps := c.MustCtl("service", "ps", "web")
		line := lineContaining(ps, victim.GetMeta().GetId()[:12])
		if !strings.Contains(line, "Failed") || !strings.Contains(line, "non-zero exit (137)") {
			t.Errorf("service ps shows the killed task as %q, want Failed with non-zero exit (137); all:\n%s", line, ps)
		}
	})

	t.Run("scale to 1", func(t *testing.T) {
		c := c.With(t)
		c.MustCtl("service", "scale", "web=1")
		c.WaitRunning("web", 1, 20*time.Second)
		c.Eventually(20*time.Second, "1 container process left", func() (bool, string) {
			procs := c.ContainerProcs()
			return len(procs) == 1, fmt.Sprintf("%d: %+v", len(procs), procs)
		})
	})

	t.Run("rm leaves nothing", func(t *testing.T) {
		c := c.With(t)
		c.MustCtl("service", "rm", "web")
		c.Eventually(20*time.Second, "every trace of the service gone", func() (bool, string) {
			return leftovers(c, m, w)
		})
		if ls := c.MustCtl("service", "ls", "--format", "json"); strings.TrimSpace(ls) != "[]" {
			t.Errorf("service ls after rm: %s", ls)
		}
	})
}

// leftovers reports whether the nodes' containers are all gone from the
// host, and if not, what remains.
func leftovers(c *Cluster, nodes ...*Proc) (bool, string) {
	var left []string
	if procs := c.ContainerProcs(); len(procs) > 0 {
		left = append(left, fmt.Sprintf("processes %+v", procs))
	}
	for _, mi := range clustertest.MountsUnder(c.Dir()) {
		left = append(left, fmt.Sprintf("%s mount %s", mi.FSType, mi.MountPoint))
	}
	for _, n := range nodes {
		if dirs := clustertest.ContainerCgroups(n.NodeID); len(dirs) > 0 {
			left = append(left, fmt.Sprintf("cgroups %v", dirs))
		}
		dir := filepath.Join(n.DataDir, "runtime", "containers")
		ents, err := os.ReadDir(dir)
		if err != nil {
			left = append(left, err.Error())
		}
		for _, e := range ents {
			left = append(left, filepath.Join(dir, e.Name()))
		}
	}
	return len(left) == 0, strings.Join(left, "; ")
}

func lineContaining(s, sub string) string {
	lines := strings.Split(s, "\n")
	if i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, sub) }); i >= 0 {
		return lines[i]
	}
	return ""
}
