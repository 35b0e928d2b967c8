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

// nodeState is the state of the node with hostname host, and its message.
func nodeState(c *Cluster, host string) (minkepb.NodeStatus_State, string) {
	for _, n := range c.Nodes() {
		if n.GetDescription().GetHostname() == host {
			return n.GetStatus().GetState(), n.GetStatus().GetMessage()
		}
	}
	return minkepb.NodeStatus_UNKNOWN, "not listed"
}

// workerPids are the live container processes of node, by task.
func workerPids(c *Cluster, node string) map[string]int {
	out := map[string]int{}
	for _, p := range liveContainerProcs([]string{node}) {
		out[p.TaskID] = p.Pid
	}
	return out
}

func taskIDs(tasks []*minkepb.Task) []string {
	var ids []string
	for _, t := range tasks {
		ids = append(ids, t.GetMeta().GetId())
	}
	slices.Sort(ids)
	return ids
}

// TestPlannedWorkerRestartKeepsTasks stops a worker-only node with SIGTERM
// (a planned restart: it announces it), keeps it away for longer than
// gossip takes to see it gone (about a second), and starts it again: the
// node is never DOWN, no task is replaced, and the new worker process
// re-adopts the very same container processes.
func TestPlannedWorkerRestartKeepsTasks(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	w := c.StartWorker("w2", "127.0.0.2", c.JoinToken(), m)
	c.PushHello()
	c.MustCtl("service", "create", "--name", "web", "--replicas", "4", "--restart-delay", "0s", "hello:latest")
	before := c.WaitRunning("web", 4, 30*time.Second)
	pids := workerPids(c, w.NodeID)
	if len(pids) == 0 {
		t.Fatalf("no task of web runs on w2: %v", before)
	}

	c.Kill(w, syscall.SIGTERM, 15*time.Second)
	// Away for 3s, three times what gossip needs to mark a silent node
	// DOWN (see TestWorkerDeathMarksNodeDown): the node must stay READY,
	// held, and no task may be added.
	away := time.Now().Add(3 * time.Second)
	for time.Now().Before(away) {
		if s, msg := nodeState(c, "w2"); s != minkepb.NodeStatus_READY {
			t.Fatalf("w2 is %v (%s) during its planned restart", s, msg)
		}
		if ids := taskIDs(c.Tasks("web")); !slices.Equal(ids, taskIDs(before)) {
			t.Fatalf("tasks changed during the planned restart: %v, before %v", ids, taskIDs(before))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, msg := nodeState(c, "w2"); !strings.Contains(msg, "restarting") {
		t.Errorf("w2's status message %q does not say it is restarting", msg)
	}

	logStart := fileSize(w.logPath)
	c.Restart(w) // returns at once: w2 was READY all along
	c.Eventually(20*time.Second, "w2 back: its hold cleared, each of its containers re-adopted", func() (bool, string) {
		s, msg := nodeState(c, "w2")
		if s != minkepb.NodeStatus_READY || strings.Contains(msg, "restarting") {
			return false, fmt.Sprintf("w2 is %v (%s)", s, msg)
		}
		log := readFrom(w.logPath, logStart)
		for task, pid := range pids {
			if !strings.Contains(log, fmt.Sprintf("msg=\"re-adopted container\" component=agent task_id=%s pid=%d", task, pid)) {
				return false, fmt.Sprintf("task %s (pid %d) not re-adopted; log:\n%s", task, pid, log)
			}
		}
		return true, ""
	})
	c.Eventually(20*time.Second, "all 4 tasks RUNNING, none replaced, w2's with their old pids", func() (bool, string) {
		all := c.Tasks("web")
		run := clustertest.Running(all)
		if ids := taskIDs(all); !slices.Equal(ids, taskIDs(before)) {
			return false, fmt.Sprintf("tasks %v, before %v", ids, taskIDs(before))
		}
		for _, task := range run {
			if want, ok := pids[task.GetMeta().GetId()]; ok && int(task.GetStatus().GetContainer().GetPid()) != want {
				return false, fmt.Sprintf("task %s pid %d, was %d", task.GetMeta().GetId(), task.GetStatus().GetContainer().GetPid(), want)
			}
		}
		return len(run) == 4, fmt.Sprintf("%d of 4 running", len(run))
	})
	if now := workerPids(c, w.NodeID); fmt.Sprint(now) != fmt.Sprint(pids) {
		t.Errorf("w2's container processes %v after the restart, want the same %v", now, pids)
	}
}

// TestPlannedRestartPastGrace: a worker that announced a restart but is
// not back within the managers' grace (2s here) is marked DOWN and its
// tasks replaced; when it does come back, its surplus containers are
// stopped, never two tasks of a slot running at once.
func TestPlannedRestartPastGrace(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true, Args: []string{"--worker-restart-grace", "2s"}})
	w := c.StartWorker("w2", "127.0.0.2", c.JoinToken(), m)
	c.PushHello()
	c.MustCtl("service", "create", "--name", "web", "--replicas", "2", "--restart-delay", "0s", "hello:latest")
	c.WaitRunning("web", 2, 30*time.Second)
	if len(workerPids(c, w.NodeID)) == 0 {
		t.Fatal("no task of web runs on w2")
	}
	stopped := time.Now()
	c.Kill(w, syscall.SIGTERM, 15*time.Second)
	c.Eventually(15*time.Second, "w2 DOWN once its grace is over", func() (bool, string) {
		s, msg := nodeState(c, "w2")
		return s == minkepb.NodeStatus_DOWN, fmt.Sprintf("w2 is %v (%s)", s, msg)
	})
	if held := time.Since(stopped); held < 2*time.Second {
		t.Errorf("w2 DOWN %v after SIGTERM, before its 2s grace ended", held)
	}
	mID := nodeIDOf(c, "m1")
	c.Eventually(20*time.Second, "both replicas running on m1", func() (bool, string) {
		run := clustertest.Running(c.Tasks("web"))
		on := 0
		for _, task := range run {
			if task.GetNodeId() == mID {
				on++
			}
		}
		return on == 2 && len(run) == 2, fmt.Sprintf("%d running, %d on m1", len(run), on)
	})
	c.Restart(w)
	c.Eventually(20*time.Second, "w2's old containers stopped", func() (bool, string) {
		left := workerPids(c, w.NodeID)
		return len(left) == 0, fmt.Sprintf("still running on w2: %v", left)
	})
	if run := clustertest.Running(c.Tasks("web")); len(run) != 2 {
		t.Errorf("%d tasks running after w2 came back, want 2", len(run))
	}
}
