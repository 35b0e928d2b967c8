//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
)

// serviceJSON is `service inspect --format json` decoded.
func serviceJSON(t *testing.T, c *Cluster, name string) *minkepb.Service {
	t.Helper()
	svcs, err := clustertest.DecodeArray(c.MustCtl("service", "inspect", name, "--format", "json"),
		func() *minkepb.Service { return new(minkepb.Service) })
	if err != nil || len(svcs) != 1 {
		t.Fatalf("service inspect %s: %v (%d services)", name, err, len(svcs))
	}
	return svcs[0]
}

// bySlot groups a service's tasks by slot, oldest first.
func bySlot(tasks []*minkepb.Task) map[uint64][]*minkepb.Task {
	out := map[uint64][]*minkepb.Task{}
	for _, t := range tasks {
		out[t.GetSlot()] = append(out[t.GetSlot()], t)
	}
	for _, ts := range out {
		slices.SortFunc(ts, func(a, b *minkepb.Task) int {
			return a.GetMeta().GetCreatedAt().AsTime().Compare(b.GetMeta().GetCreatedAt().AsTime())
		})
	}
	return out
}

// TestRollingUpdate updates a 2-replica service with real containers,
// stop-first and then start-first, one task at a time, and checks each
// order from the tasks' own times: stop-first creates a slot's new task
// only after the old one stopped; start-first has the new task running
// before the old one stops.
func TestRollingUpdate(t *testing.T) {
	c := NewCluster(t)
	c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "web", "--replicas", "2", "--restart-delay", "0s",
		"--update-monitor", "500ms", "--stop-grace-period", "2s", "hello:latest", "-listen", ":8080")
	c.WaitRunning("web", 2, 30*time.Second)

	t.Run("stop-first", func(t *testing.T) {
		c := c.With(t)
		r := c.Ctl("service", "update", "--env-add", "V=1", "web")
		if r.Code != 0 {
			t.Fatalf("%s", r)
		}
		if !strings.Contains(r.Stderr, "web: completed: 2/2 tasks on the current spec: update completed") {
			t.Errorf("update progress does not end in completion:\n%s", r.Stderr)
		}
		svc := serviceJSON(t, c, "web")
		if got := svc.GetUpdateStatus().GetState(); got != minkepb.UpdateStatus_COMPLETED {
			t.Errorf("update status %v, want COMPLETED", got)
		}
		if !slices.Contains(svc.GetSpec().GetTask().GetContainer().GetEnv(), "V=1") || svc.GetPreviousSpec() == nil {
			t.Errorf("spec env %v, previous spec %v; want V=1 and the old spec kept", svc.GetSpec().GetTask().GetContainer().GetEnv(), svc.GetPreviousSpec())
		}
		running := c.WaitRunning("web", 2, 20*time.Second)
		for _, task := range running {
			if !slices.Contains(task.GetSpec().GetContainer().GetEnv(), "V=1") {
				t.Errorf("running task %s has env %v, want V=1", task.GetMeta().GetId(), task.GetSpec().GetContainer().GetEnv())
			}
		}
		for slot, ts := range bySlot(c.Tasks("web")) {
			if len(ts) < 2 {
				t.Fatalf("slot %d has %d tasks, want the old one kept as history", slot, len(ts))
			}
			old, cur := ts[len(ts)-2], ts[len(ts)-1]
			if old.GetStatus().GetState() != minkepb.TaskState_SHUTDOWN {
				t.Errorf("slot %d: old task is %v, want SHUTDOWN", slot, old.GetStatus().GetState())
			}
			stopped, created := old.GetStatus().GetTimestamp().AsTime(), cur.GetMeta().GetCreatedAt().AsTime()
			if created.Before(stopped) {
				t.Errorf("slot %d: stop-first created the new task at %v, before the old one stopped at %v", slot, created, stopped)
			}
		}
	})

	t.Run("start-first", func(t *testing.T) {
		c := c.With(t)
		c.MustCtl("service", "update", "--env-add", "V=2", "--update-order", "start-first", "web")
		running := c.WaitRunning("web", 2, 20*time.Second)
		for _, task := range running {
			if !slices.Contains(task.GetSpec().GetContainer().GetEnv(), "V=2") {
				t.Errorf("running task has env %v, want V=2", task.GetSpec().GetContainer().GetEnv())
			}
		}
		for slot, ts := range bySlot(c.Tasks("web")) {
			old, cur := ts[len(ts)-2], ts[len(ts)-1]
			if cur.GetStatus().GetState() != minkepb.TaskState_RUNNING || old.GetStatus().GetState() != minkepb.TaskState_SHUTDOWN {
				t.Fatalf("slot %d: new task %v, old %v; want RUNNING and SHUTDOWN", slot, cur.GetStatus().GetState(), old.GetStatus().GetState())
			}
			started, stopped := cur.GetStatus().GetTimestamp().AsTime(), old.GetStatus().GetTimestamp().AsTime()
			if stopped.Before(started) {
				t.Errorf("slot %d: start-first stopped the old task at %v, before the new one ran at %v", slot, stopped, started)
			}
		}
	})

	t.Run("force redeploys an unchanged spec", func(t *testing.T) {
		c := c.With(t)
		before := map[string]bool{}
		for _, task := range clustertest.Running(c.Tasks("web")) {
			before[task.GetMeta().GetId()] = true
		}
		c.MustCtl("service", "update", "--force", "--update-parallelism", "0", "web")
		for _, task := range c.WaitRunning("web", 2, 20*time.Second) {
			if before[task.GetMeta().GetId()] {
				t.Errorf("task %s still running after --force", task.GetMeta().GetId())
			}
		}
		if f := serviceJSON(t, c, "web").GetSpec().GetTask().GetForceUpdate(); f != 1 {
			t.Errorf("force_update = %d, want 1", f)
		}
	})
}

// TestUpdateFailureRollsBack updates a service to a command that exits 1:
// with --update-failure-action rollback the update must roll back by
// itself to the previous spec, and `service update` must say so and exit
// 1. A manual rollback afterwards has a previous spec to return to.
func TestUpdateFailureRollsBack(t *testing.T) {
	c := NewCluster(t)
	c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "api", "--replicas", "2", "--restart-delay", "0s",
		"--update-failure-action", "rollback", "--update-monitor", "2s", "hello:latest", "-listen", ":8080")
	c.WaitRunning("api", 2, 30*time.Second)

	r := c.Ctl("service", "update", "--args", "-exit 1", "api")
	if r.Code != 1 || !strings.Contains(r.Stderr, "rolled back") {
		t.Fatalf("update to a failing command: want exit 1 and a rollback message\n%s", r)
	}
	svc := serviceJSON(t, c, "api")
	if got := svc.GetUpdateStatus().GetState(); got != minkepb.UpdateStatus_ROLLBACK_COMPLETED {
		t.Errorf("update status %v (%s), want ROLLBACK_COMPLETED", got, svc.GetUpdateStatus().GetMessage())
	}
	if args := svc.GetSpec().GetTask().GetContainer().GetArgs(); !slices.Equal(args, []string{"-listen", ":8080"}) {
		t.Errorf("spec args after rollback %q, want the original", args)
	}
	if args := svc.GetPreviousSpec().GetTask().GetContainer().GetArgs(); !slices.Equal(args, []string{"-exit", "1"}) {
		t.Errorf("previous spec args %q, want the failed update's", args)
	}
	running := c.WaitRunning("api", 2, 20*time.Second)
	for _, task := range running {
		if args := task.GetSpec().GetContainer().GetArgs(); !slices.Equal(args, []string{"-listen", ":8080"}) {
			t.Errorf("running task args %q, want the original", args)
		}
	}
	out := c.MustCtl("service", "ls")
	if !strings.Contains(out, "rollback_completed") {
		t.Errorf("service ls does not show the update status:\n%s", out)
	}
	out = c.MustCtl("service", "inspect", "api")
	if !strings.Contains(out, "Update status:") || !strings.Contains(out, "rolled back due to failure") {
		t.Errorf("service inspect does not explain the rollback:\n%s", out)
	}
}

// TestUpdateFailurePauses: with the default failure action an update to a
// failing command pauses, leaves the spec as asked, and keeps the slots
// it did not reach on the old spec; a manual rollback then restores all.
func TestUpdateFailurePauses(t *testing.T) {
	c := NewCluster(t)
	c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "api", "--replicas", "3", "--restart-delay", "1s",
		"--update-monitor", "1s", "hello:latest", "-listen", ":8080")
	c.WaitRunning("api", 3, 30*time.Second)
	r := c.Ctl("service", "update", "--args", "-exit 3", "api")
	if r.Code != 1 || !strings.Contains(r.Stderr, "update paused due to failure") {
		t.Fatalf("want exit 1 and a pause message\n%s", r)
	}
	svc := serviceJSON(t, c, "api")
	if got := svc.GetUpdateStatus().GetState(); got != minkepb.UpdateStatus_PAUSED {
		t.Errorf("update status %v, want PAUSED", got)
	}
	old := 0
	for _, task := range clustertest.Running(c.Tasks("api")) {
		if slices.Equal(task.GetSpec().GetContainer().GetArgs(), []string{"-listen", ":8080"}) {
			old++
		}
	}
	// Parallelism 1: the failure pauses the update while it is at most at
	// its second slot, so the third still runs the old spec.
	if old < 1 {
		t.Errorf("%d tasks of the old spec running, want at least 1: the update went on after a failure", old)
	}
	// A manual rollback returns every slot to the old spec.
	c.MustCtl("service", "rollback", "api")
	c.Eventually(20*time.Second, "3 tasks of the old spec running", func() (bool, string) {
		n := 0
		for _, task := range clustertest.Running(c.Tasks("api")) {
			if slices.Equal(task.GetSpec().GetContainer().GetArgs(), []string{"-listen", ":8080"}) {
				n++
			}
		}
		return n == 3, fmt.Sprintf("%d running", n)
	})
	b, _ := json.Marshal(serviceJSON(t, c, "api").GetUpdateStatus())
	if got := serviceJSON(t, c, "api").GetUpdateStatus().GetState(); got != minkepb.UpdateStatus_ROLLBACK_COMPLETED {
		t.Errorf("after manual rollback: %s, want ROLLBACK_COMPLETED", b)
	}
}
