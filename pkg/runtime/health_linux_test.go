package runtime

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minke-io/minke/internal/testimage"
)

// TestHealthcheck runs real probes inside containers: a command that
// succeeds makes the container healthy, and its output shows it ran in the
// container's root (/hello exists only there), UTS namespace (hostname)
// and PID namespace (a small pid); failures and timeouts make it unhealthy
// after Retries probes in a row.
func TestHealthcheck(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, helloImage(t), "hello:latest")
	ctx := testCtx(t)
	fast := func(test ...string) *HealthConfig {
		return &HealthConfig{Test: test, Interval: 100 * time.Millisecond, Timeout: 2 * time.Second, Retries: 2}
	}
	tests := []struct {
		name       string
		hc         *HealthConfig
		want       HealthState
		wantCode   int
		wantOutput string
	}{
		{"healthy", fast("CMD", "/hello", "-exit", "0"), HealthHealthy, 0, "hello from health-healthy pid "},
		{"unhealthy", fast("CMD", "/hello", "-exit", "3"), HealthUnhealthy, 3, "hello from health-unhealthy"},
		{"not found", fast("CMD", "nope"), HealthUnhealthy, 127, `executable "nope" not found in $PATH`},
		{"timeout", &HealthConfig{Test: []string{"CMD", "/hello"}, Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond, Retries: 1},
			HealthUnhealthy, -1, "Health check exceeded timeout (300ms)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := "health-" + strings.ReplaceAll(tc.name, " ", "-")
			c := create(t, r, ContainerSpec{ID: id, Image: ref, Healthcheck: tc.hc})
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if got := c.Health().State; got != HealthStarting {
				t.Errorf("health right after start = %s, want starting", got)
			}
			var st HealthStatus
			select {
			case st = <-c.HealthChanges():
			case <-time.After(20 * time.Second):
				t.Fatalf("no health change within 20s; health %+v", c.Health())
			}
			if st.State != tc.want || st.ExitCode != tc.wantCode || !strings.Contains(st.Output, tc.wantOutput) {
				t.Fatalf("health %s (exit %d, streak %d, output %q), want %s, exit %d, output containing %q",
					st.State, st.ExitCode, st.FailingStreak, st.Output, tc.want, tc.wantCode, tc.wantOutput)
			}
			if tc.want == HealthUnhealthy && st.FailingStreak != tc.hc.Retries {
				t.Errorf("unhealthy after %d failures, want %d (retries)", st.FailingStreak, tc.hc.Retries)
			}
			if tc.want == HealthHealthy {
				m := regexp.MustCompile(`pid (\d+)`).FindStringSubmatch(st.Output)
				if pid, _ := strconv.Atoi(m[1]); m == nil || pid > 100 {
					t.Errorf("probe pid %v: not in the container's PID namespace", m)
				}
			}
			if err := c.Stop(ctx, 5*time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHealthcheckFromImage: the image's HEALTHCHECK applies unless the spec
// overrides it or disables it with NONE.
func TestResolveHealthcheck(t *testing.T) {
	img := &HealthConfig{Test: []string{"CMD-SHELL", "curl -f http://localhost/"}, Interval: 5 * time.Second, Retries: 5}
	tests := []struct {
		name      string
		spec, img *HealthConfig
		want      *HealthConfig
		wantErr   string
	}{
		{"none at all", nil, nil, nil, ""},
		{"image's, defaults filled", nil, img, &HealthConfig{Test: img.Test, Interval: 5 * time.Second, Timeout: DefaultHealthTimeout, Retries: 5}, ""},
		{"spec disables", &HealthConfig{Test: []string{"NONE"}}, img, nil, ""},
		{"spec replaces", &HealthConfig{Test: []string{"CMD", "true"}}, img,
			&HealthConfig{Test: []string{"CMD", "true"}, Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries}, ""},
		{"spec timings keep the image's test", &HealthConfig{Interval: time.Second}, img,
			&HealthConfig{Test: img.Test, Interval: time.Second, Timeout: DefaultHealthTimeout, Retries: 5}, ""},
		{"bad kind", &HealthConfig{Test: []string{"RUN", "x"}}, nil, nil, "want NONE, CMD or CMD-SHELL"},
		{"CMD without command", &HealthConfig{Test: []string{"CMD"}}, nil, nil, "CMD needs a command"},
		{"too short", &HealthConfig{Test: []string{"CMD", "x"}, Timeout: time.Microsecond}, nil, nil, "Healthcheck.Timeout 1µs is below the minimum 1ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveHealthcheck(tc.spec, tc.img)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && (strings.Join(got.Test, "|") != strings.Join(tc.want.Test, "|") ||
				got.Interval != tc.want.Interval || got.Timeout != tc.want.Timeout || got.Retries != tc.want.Retries)) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestHealthTracker applies docker's rules: failures in the start period do
// not count until the first success; Retries failures in a row make the
// container unhealthy; one success makes it healthy again.
func TestHealthTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newHealthTracker(HealthConfig{Retries: 2, StartPeriod: 10 * time.Second}, t0)
	steps := []struct {
		at     time.Duration
		code   int
		want   HealthState
		streak int
	}{
		{1 * time.Second, 1, HealthStarting, 0}, // in the start period: not counted
		{5 * time.Second, 1, HealthStarting, 0},
		{11 * time.Second, 1, HealthStarting, 1}, // counted from here
		{12 * time.Second, 0, HealthHealthy, 0},
		{13 * time.Second, 1, HealthHealthy, 1},
		{14 * time.Second, 1, HealthUnhealthy, 2},
		{15 * time.Second, 0, HealthHealthy, 0},
	}
	for i, s := range steps {
		st := tr.record(t0.Add(s.at), s.code, "")
		if st.State != s.want || st.FailingStreak != s.streak {
			t.Fatalf("step %d (t+%s, exit %d): %s streak %d, want %s streak %d", i, s.at, s.code, st.State, st.FailingStreak, s.want, s.streak)
		}
	}
	// After the container was healthy once, the start period no longer
	// hides failures.
	tr = newHealthTracker(HealthConfig{Retries: 1, StartPeriod: time.Hour}, t0)
	tr.record(t0.Add(time.Second), 0, "")
	if st := tr.record(t0.Add(2*time.Second), 1, ""); st.State != HealthUnhealthy {
		t.Errorf("failure after a success in the start period: %s, want unhealthy", st.State)
	}
}
