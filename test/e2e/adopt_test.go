//go:build linux

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
)

// TestWorkerRestartReadoptsContainers SIGKILLs a node's process (manager
// and worker role): its containers keep running under their shims. One of
// them is killed while no worker runs. The restarted worker re-adopts the
// others (same tasks, same processes, still stoppable) and reports the
// killed one with its real exit code, 137.
func TestWorkerRestartReadoptsContainers(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "web", "--replicas", "2", "--restart-delay", "0s", "hello:latest")
	c.MustCtl("service", "create", "--name", "job", "--restart-condition", "none", "hello:latest")
	web := c.WaitRunning("web", 2, 30*time.Second)
	job := c.WaitRunning("job", 1, 30*time.Second)[0]

	pids := map[string]int{} // task ID → container pid
	for _, p := range c.ContainerProcs() {
		pids[p.TaskID] = p.Pid
	}
	if len(pids) != 3 {
		t.Fatalf("%d container processes before the kill, want 3: %v", len(pids), pids)
	}
	shims := shimProcs(keysOf(pids))
	if len(shims) != 3 {
		t.Fatalf("%d shims before the kill, want 3: %+v", len(shims), shims)
	}
	for _, s := range shims {
		if s.PPid != m.Pid() {
			t.Errorf("shim %d of %s has parent %d, want the worker %d", s.Pid, s.TaskID, s.PPid, m.Pid())
		}
	}

	c.Kill(m, syscall.SIGKILL, 5*time.Second)
	// Nothing of the containers died with the worker.
	if got := shimProcs(keysOf(pids)); len(got) != 3 {
		t.Errorf("%d shims alive after the worker's SIGKILL, want 3: %+v", len(got), got)
	}
	jobPid := pids[job.GetMeta().GetId()]
	if err := syscall.Kill(jobPid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing job's container %d: %v", jobPid, err)
	}
	c.Eventually(10*time.Second, "job's container and shim gone", func() (bool, string) {
		for _, p := range c.ContainerProcs() {
			if p.Pid == jobPid {
				return false, "container still alive"
			}
		}
		s := shimProcs([]string{job.GetMeta().GetId()})
		return len(s) == 0, fmt.Sprintf("shim %+v", s)
	})

	c.Restart(m)
	c.Eventually(30*time.Second, "job reported FAILED with exit code 137", func() (bool, string) {
		tasks := c.Tasks("job")
		for _, tk := range tasks {
			if tk.GetMeta().GetId() != job.GetMeta().GetId() {
				continue
			}
			st := tk.GetStatus()
			ok := st.GetState() == minkepb.TaskState_FAILED && st.GetContainer().GetExitCode() == 137 &&
				strings.Contains(st.GetErr(), "137")
			return ok, fmt.Sprintf("job task is %v, exit %d, err %q", st.GetState(), st.GetContainer().GetExitCode(), st.GetErr())
		}
		return false, fmt.Sprintf("job task %s not listed (%d tasks)", job.GetMeta().GetId(), len(tasks))
	})
	// The web tasks were not replaced: the same tasks run the same
	// processes as before the kill.
	c.Eventually(30*time.Second, "web's tasks re-adopted", func() (bool, string) {
		run := clustertest.Running(c.Tasks("web"))
		if len(run) != 2 {
			return false, fmt.Sprintf("%d web tasks running", len(run))
		}
		for _, tk := range run {
			id := tk.GetMeta().GetId()
			if !slices.ContainsFunc(web, func(w *minkepb.Task) bool { return w.GetMeta().GetId() == id }) {
				return false, fmt.Sprintf("task %s is new: the old one was replaced", id)
			}
		}
		return true, ""
	})
	for _, tk := range web {
		alive := false
		for _, p := range c.ContainerProcs() {
			if p.TaskID == tk.GetMeta().GetId() && p.Pid == pids[tk.GetMeta().GetId()] {
				alive = true
			}
		}
		if !alive {
			t.Errorf("web task %s: container pid %d did not survive the restart", tk.GetMeta().GetId(), pids[tk.GetMeta().GetId()])
		}
	}

	// The adopted containers obey the new worker: removing the service
	// stops them, and their shims go with them.
	c.MustCtl("service", "rm", "web", "job")
	c.Eventually(30*time.Second, "web's containers and shims gone", func() (bool, string) {
		procs, shims := c.ContainerProcs(), shimProcs(keysOf(pids))
		for _, s := range shims {
			clustertest.ReapIfChild(s.Pid)
		}
		return len(procs) == 0 && len(shims) == 0, fmt.Sprintf("containers %+v, shims %+v", procs, shims)
	})
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
