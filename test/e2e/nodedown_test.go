//go:build linux

package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
)

// TestWorkerDeathMarksNodeDown kills a worker process outright and expects
// gossip to get its node marked DOWN, its task replaced on the manager's own
// worker role, and the node READY again once the worker is back.
func TestWorkerDeathMarksNodeDown(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	w := c.StartWorker("w2", "127.0.0.2", c.JoinToken(), m)
	c.PushHello()
	c.MustCtl("service", "create", "--name", "web", "--replicas", "2", "--restart-delay", "0s", "hello:latest")

	state := func(host string) minkepb.NodeStatus_State {
		for _, n := range c.Nodes() {
			if n.GetDescription().GetHostname() == host {
				return n.GetStatus().GetState()
			}
		}
		return minkepb.NodeStatus_UNKNOWN
	}
	start := time.Now()
	c.Kill(w, syscall.SIGKILL, 10*time.Second)
	c.Eventually(10*time.Second, "node w2 DOWN", func() (bool, string) {
		s := state("w2")
		return s == minkepb.NodeStatus_DOWN, fmt.Sprintf("w2 is %v", s)
	})
	t.Logf("worker SIGKILLed → node DOWN in %v", time.Since(start).Round(time.Millisecond))
	c.Eventually(20*time.Second, "both replicas running on m1", func() (bool, string) {
		run := clustertest.Running(c.Tasks("web"))
		onM1 := 0
		for _, task := range run {
			if task.GetNodeId() != "" && task.GetNodeId() == nodeIDOf(c, "m1") {
				onM1++
			}
		}
		return onM1 == 2, fmt.Sprintf("%d running, %d on m1", len(run), onM1)
	})
	c.Restart(w)
	c.Eventually(20*time.Second, "node w2 READY again", func() (bool, string) {
		s := state("w2")
		return s == minkepb.NodeStatus_READY, fmt.Sprintf("w2 is %v", s)
	})
	c.MustCtl("service", "rm", "web")
}

func nodeIDOf(c *Cluster, host string) string {
	for _, n := range c.Nodes() {
		if n.GetDescription().GetHostname() == host {
			return n.GetMeta().GetId()
		}
	}
	return ""
}
