//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsFollowPicksUpNewTasks follows a service's logs with
// `swarmctl service logs -f`, scales the service up, and sees the lines of
// the task that started after the stream began, on the same stream.
func TestLogsFollowPicksUpNewTasks(t *testing.T) {
	c := NewCluster(t)
	c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	c.MustCtl("service", "create", "--name", "web", "--replicas", "1", "hello:latest")
	first := c.WaitRunning("web", 1, 30*time.Second)[0]

	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	follow := exec.CommandContext(ctx, Bins.Swarmctl, "service", "logs", "-f", "web")
	follow.Env = append(os.Environ(), "MINKE_HOST="+c.socket)
	follow.Stdout, follow.Stderr = &out, &errOut
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- follow.Wait() }()
	t.Cleanup(func() { cancel(); <-exited })

	hello := func(taskID string) string { return "hello from " + taskID + " pid 1" }
	c.Eventually(15*time.Second, "the first task's lines on the followed stream", func() (bool, string) {
		return strings.Contains(out.String(), hello(first.GetMeta().GetId())), fmt.Sprintf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	})

	c.MustCtl("service", "scale", "web=2")
	var added string
	for _, task := range c.WaitRunning("web", 2, 30*time.Second) {
		if id := task.GetMeta().GetId(); id != first.GetMeta().GetId() {
			added = id
		}
	}
	if added == "" {
		t.Fatal("no new task after scaling to 2")
	}
	c.Eventually(15*time.Second, "the new task's lines on the stream begun before it", func() (bool, string) {
		select {
		case err := <-exited:
			exited <- err
			return false, fmt.Sprintf("swarmctl logs -f exited: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
		default:
		}
		// Its first line (no tail is applied to a task that starts later)
		// and a later one, prefixed with its slot.
		var first, tick bool
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(line, "web.2.") {
				first = first || strings.Contains(line, hello(added))
				tick = tick || strings.Contains(line, "tick ")
			}
		}
		return first && tick, fmt.Sprintf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	})
}
