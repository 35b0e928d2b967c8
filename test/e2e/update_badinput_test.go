//go:build linux

package e2e

import "testing"

// TestUpdateBadInput feeds service update, rollback, rebalance and the
// orchestration flags of create wrong input: each must fail with exit 1
// and one line naming the field and value, leaving the stored services as
// they were.
func TestUpdateBadInput(t *testing.T) {
	c := NewCluster(t)
	c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "keep", "--detach", "hello:latest", "-listen", ":8080")
	c.MustCtl("service", "create", "--name", "everywhere", "--mode", "global", "--detach", "hello:latest", "-listen", ":8080")

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr []string
	}{
		{"constraint with one =", []string{"service", "update", "--constraint-add", "node.labels.zone=a", "keep"},
			[]string{"--constraint-add", `"node.labels.zone=a"`, "KEY==VALUE"}},
		{"constraint with unknown key", []string{"service", "update", "--constraint-add", "node.colour==red", "keep"},
			[]string{"--constraint-add", `unknown key "node.colour"`}},
		{"create with malformed constraint", []string{"service", "create", "--constraint", "node.labels.zone=a", "hello:latest"},
			[]string{"--constraint", `"node.labels.zone=a"`}},
		{"negative parallelism", []string{"service", "update", "--update-parallelism", "-1", "keep"},
			[]string{"--update-parallelism", `"-1"`, "non-negative"}},
		{"negative rollback parallelism", []string{"service", "create", "--rollback-parallelism", "-2", "hello:latest"},
			[]string{"--rollback-parallelism", `"-2"`}},
		{"unknown failure action", []string{"service", "update", "--update-failure-action", "explode", "keep"},
			[]string{"--update-failure-action", `"explode"`, "pause, continue or rollback"}},
		{"rollback failure action rollback", []string{"service", "update", "--rollback-failure-action", "rollback", "keep"},
			[]string{"--rollback-failure-action", "pause or continue"}},
		{"failure ratio above 1", []string{"service", "update", "--update-max-failure-ratio", "1.5", "keep"},
			[]string{"--update-max-failure-ratio", `"1.5"`, "between 0 and 1"}},
		{"unknown order", []string{"service", "update", "--update-order", "sideways", "keep"},
			[]string{"--update-order", `"sideways"`, "stop-first or start-first"}},
		{"mode change", []string{"service", "update", "--mode", "global", "keep"},
			[]string{"mode", "replicated", "cannot change"}},
		{"replicas of a global service", []string{"service", "update", "--replicas", "3", "everywhere"},
			[]string{"--replicas", "global"}},
		{"rollback without a previous spec", []string{"service", "rollback", "keep"},
			[]string{"keep", "no previous spec"}},
		{"update --rollback without a previous spec", []string{"service", "update", "--rollback", "keep"},
			[]string{"keep", "no previous spec"}},
		{"rebalance a global service", []string{"service", "rebalance", "everywhere"},
			[]string{"everywhere", "only replicated services"}},
		{"replicated job of 0", []string{"service", "create", "--mode", "replicated-job", "--replicas", "0", "hello:latest"},
			[]string{"--replicas 0", "replicated job"}},
		{"max-concurrent without a job", []string{"service", "create", "--max-concurrent", "2", "hello:latest"},
			[]string{"--max-concurrent", "replicated-job"}},
		{"unknown mode", []string{"service", "create", "--mode", "sometimes", "hello:latest"},
			[]string{"--mode", `"sometimes"`}},
		{"history limit not a number", []string{"cluster", "update", "--task-history-limit", "lots"},
			[]string{"--task-history-limit", `"lots"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.With(t)
			before := c.MustCtl("service", "ls", "--format", "json")
			r := c.Ctl(tc.args...)
			checkOneLineError(t, r.Code, r.Stderr, tc.wantErr...)
			if r.Stdout != "" {
				t.Errorf("stdout %q, want nothing", r.Stdout)
			}
			if after := c.MustCtl("service", "ls", "--format", "json"); after != before {
				t.Errorf("stored services changed:\nbefore: %s\nafter:  %s", before, after)
			}
		})
	}
}
