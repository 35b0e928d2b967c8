//go:build linux

package ha

import (
	"strings"
	"testing"
	"time"
)

// TestNetworksAcrossLeaderChange: network calls made through a follower
// reach the leader; the networks and their allocations survive the
// leader's SIGKILL, and the new leader allocates around them; every
// manager's own Raft data holds the same networks.
func TestNetworksAcrossLeaderChange(t *testing.T) {
	c := newCluster(t, 3, 0, options{})
	f := c.follower()
	frontID := strings.TrimSpace(c.mustCtl(f, "network", "create", "front"))
	c.mustCtl(f, "network", "create", "--subnet", "10.20.0.0/24", "back")
	r := c.ctl(f, "network", "create", "--subnet", "10.20.0.0/25", "x")
	checkOneLineError(t, r, "overlaps 10.20.0.0/24", `network "back"`)

	leader := c.leader()
	leader.proc.Kill()
	var survivor *mgr
	for _, m := range c.running() {
		survivor = m
	}
	c.eventually(15*time.Second, "a new leader creating a third network", func() (bool, string) {
		r := c.ctl(survivor, "network", "create", "db")
		return r.code == 0, r.out
	})
	ls := c.mustCtl(survivor, "network", "ls")
	for _, want := range []string{frontID[:12] + " front overlay 10.10.0.0/24 10.10.0.1 4096",
		" back overlay 10.20.0.0/24 10.20.0.1 4097", " db overlay 10.10.1.0/24 10.10.1.1 4098"} {
		if !strings.Contains(strings.Join(strings.Fields(ls), " "), strings.TrimSpace(want)) {
			t.Fatalf("network ls after the leader change does not show %q:\n%s", want, ls)
		}
	}
	r = c.ctl(survivor, "network", "create", "front")
	checkOneLineError(t, r, `"front"`, "already exists")

	c.restart(leader)
	c.waitManagers(3)
	c.waitSameIndex(15 * time.Second)
	got := c.requireSameState(c.ownStates())
	if len(got.GetNetworks()) != 3 {
		t.Fatalf("managers' own state holds %d networks, want 3", len(got.GetNetworks()))
	}
}
