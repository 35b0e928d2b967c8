//go:build linux

package ha

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestMetrics scrapes /metrics from inside the hosts: the Raft and
// dispatcher series are there, the applied index, commit count and apply
// times move with writes, and leader changes are counted when the leader
// dies.
func TestMetrics(t *testing.T) {
	c := newCluster(t, 3, 0, options{})
	l := c.leader()
	const (
		commits = "minke_raft_commit_seconds_count"
		applied = "minke_raft_applied_index"
		changes = "minke_raft_leader_changes_total"
		applies = `minke_raft_fsm_apply_seconds_count{command="store_actions"}`
	)
	before := map[*mgr]map[string]float64{}
	for _, m := range c.mgrs {
		ms, err := scrape(m.host, net.JoinHostPort(m.ip(), metricsPort))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{commits, "minke_raft_commit_seconds_sum", applied, changes, applies,
			"minke_dispatcher_sessions", `minke_dispatcher_session_wakes_total{cause="network"}`, "minke_dispatcher_status_commits_total"} {
			if _, ok := ms[name]; !ok {
				t.Errorf("%s: no %s in /metrics", m.name(), name)
			}
		}
		before[m] = ms
	}
	for i := range 10 {
		mustCreate(t, c, c.mgrs[i%3], fmt.Sprintf("s-%d", i))
	}
	c.eventually(10*time.Second, "applied index up by 10 on every manager", func() (bool, string) {
		for _, m := range c.mgrs {
			v, err := c.metric(m, applied)
			if err != nil {
				return false, err.Error()
			}
			if v < before[m][applied]+10 {
				return false, fmt.Sprintf("%s: %v, was %v", m.name(), v, before[m][applied])
			}
		}
		return true, ""
	})
	for _, m := range c.mgrs {
		if v, err := c.metric(m, applies); err != nil || v < before[m][applies]+10 {
			t.Errorf("%s: %s = %v (err %v), was %v; want at least 10 more", m.name(), applies, v, err, before[m][applies])
		}
	}
	if v, err := c.metric(l, commits); err != nil || v < before[l][commits]+10 {
		t.Errorf("leader %s: %s = %v (err %v), was %v; want at least 10 more", l.name(), commits, v, err, before[l][commits])
	}

	l.proc.Kill()
	c.eventually(10*time.Second, "a leader change counted by the survivors", func() (bool, string) {
		for _, m := range c.running() {
			v, err := c.metric(m, changes)
			if err != nil {
				return false, err.Error()
			}
			if v <= before[m][changes] {
				return false, fmt.Sprintf("%s: %v, was %v", m.name(), v, before[m][changes])
			}
		}
		return true, ""
	})
}
