//go:build linux

package e2e

import (
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
)

// runningHosts lists the hostnames running a task of service, sorted.
func runningHosts(c *Cluster, service string) []string {
	names := map[string]string{}
	for _, n := range c.Nodes() {
		names[n.GetMeta().GetId()] = n.GetDescription().GetHostname()
	}
	var out []string
	for _, t := range clustertest.Running(c.Tasks(service)) {
		out = append(out, names[t.GetNodeId()])
	}
	sort.Strings(out)
	return out
}

func waitHosts(c *Cluster, service string, want ...string) {
	c.t.Helper()
	sort.Strings(want)
	c.Eventually(30*time.Second, fmt.Sprintf("%s running on exactly %v", service, want), func() (bool, string) {
		got := runningHosts(c, service)
		return strings.Join(got, ",") == strings.Join(want, ","), fmt.Sprintf("running on %v", got)
	})
}

// TestGlobalService runs a global service with real containers: one task
// on every eligible node, a task on a node that joins later, none on a
// drained node or one that stops meeting a constraint, and a lost node's
// task is not moved elsewhere.
func TestGlobalService(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	w2 := c.StartWorker("w2", "127.0.0.2", c.JoinToken(), m)
	c.PushHello()
	out := c.MustCtl("service", "create", "--name", "agent", "--mode", "global", "--restart-delay", "0s",
		"--update-parallelism", "0", "hello:latest", "-listen", ":8080")
	if out == "" {
		t.Fatal("service create printed no ID")
	}
	waitHosts(c, "agent", "m1", "w2")

	c.StartWorker("w3", "127.0.0.3", c.JoinToken(), m)
	waitHosts(c, "agent", "m1", "w2", "w3")
	if ls := c.MustCtl("service", "ls"); !strings.Contains(ls, "global") || !strings.Contains(ls, "3/3") {
		t.Errorf("service ls does not show 3/3 global:\n%s", ls)
	}

	c.MustCtl("node", "update", "--availability", "drain", "w3")
	waitHosts(c, "agent", "m1", "w2")

	c.MustCtl("service", "update", "--constraint-add", "node.hostname!=m1", "agent")
	waitHosts(c, "agent", "w2")

	c.MustCtl("node", "update", "--availability", "active", "w3")
	waitHosts(c, "agent", "w2", "w3")

	// A lost node's task is not replaced on another node.
	c.Kill(w2, syscall.SIGKILL, 10*time.Second)
	c.Eventually(20*time.Second, "w2's task orphaned", func() (bool, string) {
		for _, task := range c.Tasks("agent") {
			if task.GetStatus().GetState() == minkepb.TaskState_ORPHANED {
				return true, ""
			}
		}
		return false, "no orphaned task yet"
	})
	waitHosts(c, "agent", "w3")
}

// TestGlobalServiceNodeLabels: `node update --label-add/--label-rm`
// moves a global service constrained on a label on and off nodes.
func TestGlobalServiceNodeLabels(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	c.StartWorker("w2", "127.0.0.2", c.JoinToken(), m)
	c.PushHello()
	c.MustCtl("service", "create", "--name", "edge", "--mode", "global", "--constraint", "node.labels.edge==yes",
		"--detach", "hello:latest", "-listen", ":8080")
	c.MustCtl("node", "update", "--label-add", "edge=yes", "w2")
	waitHosts(c, "edge", "w2")
	c.MustCtl("node", "update", "--label-add", "edge=yes", "--label-add", "zone=a", "m1")
	waitHosts(c, "edge", "m1", "w2")
	c.MustCtl("node", "update", "--label-rm", "edge", "w2")
	waitHosts(c, "edge", "m1")
}

// TestJobs runs a replicated job (5 completions, 2 at a time) and a global
// job with real containers: their tasks run to completion, completed
// tasks are not restarted, and service ls shows the completions.
func TestJobs(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	c.StartWorker("w2", "127.0.0.2", c.JoinToken(), m)
	c.PushHello()

	r := c.Ctl("service", "create", "--name", "batch", "--mode", "replicated-job", "--replicas", "5",
		"--max-concurrent", "2", "--restart-delay", "0s", "hello:latest", "-exit", "0")
	if r.Code != 0 || !strings.Contains(r.Stderr, "(5/5 completed)") {
		t.Fatalf("replicated job did not report 5/5 completed:\n%s", r)
	}
	c.MustCtl("service", "create", "--name", "once", "--mode", "global-job", "hello:latest", "-exit", "0")

	check := func(name string, want int) {
		tasks := c.Tasks(name)
		completed := 0
		for _, task := range tasks {
			if task.GetStatus().GetState() == minkepb.TaskState_COMPLETE {
				completed++
			}
		}
		if completed != want || len(tasks) != want {
			t.Errorf("%s: %d tasks, %d complete; want %d, all complete and none restarted", name, len(tasks), completed, want)
		}
	}
	// batch has restart delay 0s: had a completed task been restarted,
	// its replacement would exist by the time the global job completed.
	check("batch", 5)
	check("once", 2)
	slots := map[uint64]bool{}
	for _, task := range c.Tasks("batch") {
		slots[task.GetSlot()] = true
	}
	if len(slots) != 5 {
		t.Errorf("batch ran in slots %v, want 1..5", slots)
	}
	if ps := c.MustCtl("service", "ps", "batch"); !strings.HasSuffix(ps, "batch: 5/5 completed\n") {
		t.Errorf("service ps batch does not end with the completions:\n%s", ps)
	}
	ls := c.MustCtl("service", "ls")
	for _, want := range []string{"replicated-job", "(5/5 completed)", "global-job", "(2/2 completed)"} {
		if !strings.Contains(ls, want) {
			t.Errorf("service ls lacks %q:\n%s", want, ls)
		}
	}
	// Changing a job runs it again.
	r = c.Ctl("service", "update", "--env-add", "RUN=2", "--detach", "batch")
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	c.Eventually(30*time.Second, "second run of batch complete", func() (bool, string) {
		done := 0
		for _, task := range c.Tasks("batch") {
			if task.GetJobIteration() == 1 && task.GetStatus().GetState() == minkepb.TaskState_COMPLETE {
				done++
			}
		}
		return done == 5, fmt.Sprintf("%d of the second run complete", done)
	})
}

// TestRebalance: tasks placed while one node was alone move, start-first,
// to a node that joined later, and the service never runs fewer tasks.
func TestRebalance(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "web", "--replicas", "4", "--restart-delay", "0s",
		"--update-monitor", "200ms", "hello:latest", "-listen", ":8080")
	waitHosts(c, "web", "m1", "m1", "m1", "m1")
	c.StartWorker("w2", "127.0.0.2", c.JoinToken(), m)

	r := c.Ctl("service", "rebalance", "web")
	if r.Code != 0 || !strings.Contains(r.Stderr, "rebalance completed") {
		t.Fatalf("rebalance did not complete:\n%s", r)
	}
	waitHosts(c, "web", "m1", "m1", "w2", "w2")
	// Never fewer than 4 running: every moved slot's old task stopped only
	// after its replacement was running.
	for slot, ts := range bySlot(c.Tasks("web")) {
		if len(ts) < 2 {
			continue
		}
		old, cur := ts[len(ts)-2], ts[len(ts)-1]
		if old.GetStatus().GetTimestamp().AsTime().Before(cur.GetStatus().GetTimestamp().AsTime()) {
			t.Errorf("slot %d: old task stopped at %v, before its replacement ran at %v", slot,
				old.GetStatus().GetTimestamp().AsTime(), cur.GetStatus().GetTimestamp().AsTime())
		}
	}
}
