//go:build linux

package e2e

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestBadInput feeds the CLI and the worker wrong input. Each must fail
// with exit code 1 and a one-line error that says what is wrong, and must
// leave the stored services as they were.
func TestBadInput(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "keep", "hello:latest")

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr []string // substrings of the one stderr line
	}{
		{"negative replicas", []string{"service", "create", "--replicas", "-1", "hello:latest"},
			[]string{"--replicas", `"-1"`}},
		{"empty image", []string{"service", "create", "--name", "e", ""},
			[]string{"IMAGE"}},
		{"malformed image", []string{"service", "create", "UPPER:bad tag"},
			[]string{"invalid image", `"UPPER:bad tag"`}},
		{"unknown memory unit", []string{"service", "create", "--limit-memory", "64Q", "hello:latest"},
			[]string{"--limit-memory", `"64Q"`}},
		{"memory below floor", []string{"service", "create", "--limit-memory", "1k", "hello:latest"},
			[]string{"memory", "1024", "6MiB"}},
		{"duplicate name", []string{"service", "create", "--name", "keep", "hello:latest"},
			[]string{`"keep"`, "already exists"}},
		{"scale missing service", []string{"service", "scale", "nosuch=2"},
			[]string{"not found", `"nosuch"`}},
		{"rm missing service", []string{"service", "rm", "nosuch"},
			[]string{"not found", `"nosuch"`}},
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

	t.Run("worker with wrong token", func(t *testing.T) {
		c := c.With(t)
		before := c.MustCtl("service", "ls", "--format", "json")
		nodesBefore := len(c.Nodes())
		port := c.freePorts("127.0.0.3", 1)[0]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, Bins.Worker, "--data-dir", filepath.Join(c.Dir(), "badworker"),
			"--join", m.ListenAddr, "--token", "MKTKN-1-worker-00000000000000000000000000000000",
			"--advertise-addr", "127.0.0.3", "--gossip-addr", net.JoinHostPort("127.0.0.3", strconv.Itoa(port)),
			"--hostname", "badworker")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("worker with a wrong token still running after 30s; stderr:\n%s", stderr.String())
		}
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		checkOneLineError(t, code, stderr.String(), "invalid join token")
		if after := c.MustCtl("service", "ls", "--format", "json"); after != before {
			t.Errorf("stored services changed:\nbefore: %s\nafter:  %s", before, after)
		}
		if n := len(c.Nodes()); n != nodesBefore {
			t.Errorf("%d nodes after the rejected join, want %d", n, nodesBefore)
		}
	})

	t.Run("image cannot be pulled", func(t *testing.T) {
		c := c.With(t)
		const ref = "127.0.0.1:1/nope:latest"
		r := c.Ctl("service", "create", "--name", "nopull", ref)
		t.Cleanup(func() { c.Ctl("service", "rm", "nopull") })
		if r.Code != 1 || !strings.Contains(r.Stderr, ref) {
			t.Errorf("want exit 1 and an error naming %s; got %s", ref, r)
		}
		task := findTask(c.Tasks("nopull"), minkepb.TaskState_REJECTED)
		if task == nil {
			t.Fatalf("no REJECTED task: %v", c.Tasks("nopull"))
		}
		if !strings.Contains(task.GetStatus().GetErr(), ref) {
			t.Errorf("task error %q does not name %s", task.GetStatus().GetErr(), ref)
		}
		if ps := c.MustCtl("service", "ps", "nopull"); !strings.Contains(lineContaining(ps, task.GetMeta().GetId()[:12]), "Rejected") {
			t.Errorf("service ps does not show the task Rejected:\n%s", ps)
		}
	})

	// The image's ENTRYPOINT is /hello, so `create hello:latest /nonexistent`
	// runs `/hello /nonexistent` (CMD replaces CMD, as in Docker); the
	// executable itself is replaced with --entrypoint.
	t.Run("command not found", func(t *testing.T) {
		c := c.With(t)
		const want = `executable "/nonexistent" not found`
		r := c.Ctl("service", "create", "--name", "nocmd", "--entrypoint", "/nonexistent", "hello:latest")
		t.Cleanup(func() { c.Ctl("service", "rm", "nocmd") })
		if r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Errorf("want exit 1 and %s on stderr; got %s", want, r)
		}
		task := findTask(c.Tasks("nocmd"), minkepb.TaskState_FAILED)
		if task == nil {
			t.Fatalf("no FAILED task: %v", c.Tasks("nocmd"))
		}
		if !strings.Contains(task.GetStatus().GetErr(), want) {
			t.Errorf("task error %q, want it to contain %s", task.GetStatus().GetErr(), want)
		}
	})
}

// checkOneLineError checks that a command exited 1 with exactly one line
// on stderr that contains every one of wants.
func checkOneLineError(t *testing.T, code int, stderr string, wants ...string) {
	t.Helper()
	if code != 1 {
		t.Errorf("exit code %d, want 1; stderr: %q", code, stderr)
	}
	line := strings.TrimSuffix(stderr, "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Errorf("stderr is not one line: %q", stderr)
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("stderr %q does not mention %s", line, w)
		}
	}
}

func findTask(tasks []*minkepb.Task, state minkepb.TaskState) *minkepb.Task {
	for _, t := range tasks {
		if t.GetStatus().GetState() == state {
			return t
		}
	}
	return nil
}
