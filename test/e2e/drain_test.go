//go:build linux

package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestDrainAndRebalance drains a worker running half of a replicated
// service with real containers: its containers stop and the tasks run on
// the other node; once the worker is active again, nothing moves back by
// itself (as in swarm) until `service rebalance` spreads them again.
func TestDrainAndRebalance(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	w := c.StartWorker("w2", "127.0.0.2", c.JoinToken(), m)
	c.PushHello()
	c.MustCtl("service", "create", "--name", "web", "--replicas", "4", "--restart-delay", "0s",
		"--update-parallelism", "2", "--update-monitor", "200ms", "hello:latest", "-listen", ":8080")
	waitHosts(c, "web", "m1", "m1", "w2", "w2")
	if n := len(liveContainerProcs([]string{w.NodeID})); n < 2 {
		t.Fatalf("%d container processes found on w2 before the drain, want at least 2", n)
	}

	c.MustCtl("node", "update", "--availability", "drain", "w2")
	waitHosts(c, "web", "m1", "m1", "m1", "m1")
	c.Eventually(20*time.Second, "no container left on the drained w2", func() (bool, string) {
		procs := liveContainerProcs([]string{w.NodeID})
		return len(procs) == 0, fmt.Sprintf("%d container processes on w2", len(procs))
	})

	c.MustCtl("node", "update", "--availability", "active", "w2")
	if got := runningHosts(c, "web"); fmt.Sprint(got) != "[m1 m1 m1 m1]" {
		t.Errorf("after reactivating w2 the tasks moved by themselves: %v", got)
	}
	c.MustCtl("service", "rebalance", "web")
	waitHosts(c, "web", "m1", "m1", "w2", "w2")
}
