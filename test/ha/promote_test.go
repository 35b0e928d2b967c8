//go:build linux

package ha

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestPromoteDemote promotes a worker to a manager, which then runs the
// manager role itself (Raft voter, reachable in gossip), and demotes it back
// to a worker that stays READY.
func TestPromoteDemote(t *testing.T) {
	c := newCluster(t, 1, 1, options{})
	m := c.mgrs[0]
	host := c.h.Host(1)
	host.Start("w1", workerBin, "--data-dir", filepath.Join(c.dir, "w1"), "--join", m.apiAddr(),
		"--token", c.workerToken(), "--advertise-addr", host.IP(), "--hostname", "w1")

	node := func() *minkepb.Node {
		nodes, err := c.nodes(m)
		if err != nil {
			return nil
		}
		for _, n := range nodes {
			if n.GetDescription().GetHostname() == "w1" {
				return n
			}
		}
		return nil
	}
	c.eventually(readyTimeout, "worker w1 READY", func() (bool, string) {
		n := node()
		return n.GetStatus().GetState() == minkepb.NodeStatus_READY, fmt.Sprintf("w1: %v", n.GetStatus())
	})

	start := time.Now()
	c.mustCtl(m, "node", "promote", "w1")
	c.eventually(30*time.Second, "w1 a reachable manager", func() (bool, string) {
		n := node()
		return n.GetRole() == minkepb.NodeRole_MANAGER &&
				n.GetManagerStatus().GetReachability() == minkepb.ManagerStatus_REACHABLE &&
				n.GetStatus().GetState() == minkepb.NodeStatus_READY,
			fmt.Sprintf("w1: role %v, %v", n.GetRole(), n.GetManagerStatus())
	})
	t.Logf("promoted in %v", time.Since(start).Round(time.Millisecond))
	c.waitManagers(2)

	c.mustCtl(m, "node", "demote", "w1")
	c.eventually(30*time.Second, "w1 a READY worker again", func() (bool, string) {
		n := node()
		return n.GetRole() == minkepb.NodeRole_WORKER && n.GetStatus().GetState() == minkepb.NodeStatus_READY,
			fmt.Sprintf("w1: role %v, %v", n.GetRole(), n.GetStatus())
	})
	c.waitManagers(1)
}
