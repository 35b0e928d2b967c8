//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// TestManagerSIGKILLKeepsState kills a manager without warning and starts
// it again on the same data: the services and their specs must come back
// from the Raft log unchanged, and the service must run again.
func TestManagerSIGKILLKeepsState(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "web", "--replicas", "2", "--limit-memory", "32M",
		"--env", "GREETING=hi", "--label", "tier=front", "--restart-delay", "0s", "hello:latest")
	c.MustCtl("service", "create", "--name", "other", "--replicas", "1", "--restart-delay", "0s",
		"hello:latest", "-listen", ":8080")
	before := map[string]any{}
	for _, name := range []string{"web", "other"} {
		before[name] = inspect(t, c, name)
	}
	oldPids := make(map[int]bool)
	for _, p := range c.ContainerProcs() {
		oldPids[p.Pid] = true
	}
	if len(oldPids) != 3 {
		t.Fatalf("%d container processes before the kill, want 3", len(oldPids))
	}

	c.Kill(m, syscall.SIGKILL, 5*time.Second)
	c.Restart(m)

	for _, name := range []string{"web", "other"} {
		if got := inspect(t, c, name); !reflect.DeepEqual(got, before[name]) {
			t.Errorf("service %s changed across the restart:\nbefore: %s\nafter:  %s", name, jsonString(before[name]), jsonString(got))
		}
	}
	// The containers kept running under their shims, and the restarted
	// worker re-adopted them: the same 3 processes, no new ones.
	c.WaitRunning("web", 2, 30*time.Second)
	c.WaitRunning("other", 1, 30*time.Second)
	c.Eventually(10*time.Second, "exactly the 3 container processes from before alive", func() (bool, string) {
		procs := c.ContainerProcs()
		for _, p := range procs {
			if !oldPids[p.Pid] {
				return false, fmt.Sprintf("pid %d is new: a container was replaced", p.Pid)
			}
		}
		return len(procs) == 3, fmt.Sprintf("%d processes: %+v", len(procs), procs)
	})
}

// inspect returns `service inspect --format json` of service as generic
// JSON, without the fields a restart may legitimately change: the Raft
// index (meta.version) and the update time.
func inspect(t *testing.T, c *Cluster, service string) any {
	t.Helper()
	var v []map[string]any
	out := c.MustCtl("service", "inspect", service, "--format", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		t.Fatalf("service inspect %s: %v\n%s", service, err, out)
	}
	if meta, ok := v[0]["meta"].(map[string]any); ok {
		delete(meta, "version")
		delete(meta, "updatedAt")
	}
	if _, ok := v[0]["spec"]; !ok {
		t.Fatalf("service inspect %s: no spec in %s", service, out)
	}
	return v[0]
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
