//go:build linux

package ha

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minke-io/minke/api/minkepb"
)

// TestRegistrySurvivesPusher pushes an image to the leader and kills it
// right away: the image was copied to a majority before the push was
// acknowledged, so a service of it runs on the survivors.
func TestRegistrySurvivesPusher(t *testing.T) {
	c := newCluster(t, 3, 0, options{worker: true})
	l := c.leader()
	out := c.mustCtl(l, "image", "push", helloTar)
	if !strings.HasPrefix(out, "hello:latest@sha256:") {
		t.Fatalf("image push printed %q, want hello:latest@sha256:…", out)
	}
	l.proc.Kill()
	start := time.Now()
	nl := c.leader()
	t.Logf("%s took the push and was killed; %s leads %v later", l.name(), nl.name(), time.Since(start).Round(time.Millisecond))

	var via *mgr
	for _, m := range c.running() {
		if m != nl {
			via = m
		}
	}
	start = time.Now()
	c.mustCtl(via, "service", "create", "--name", "web", "--replicas", "2", "hello:latest")
	t.Logf("service create --replicas 2 returned (2/2 running) after %v", time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	tasks, err := c.client(via).ListTasks(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, task := range tasks {
		if task.GetStatus().GetState() == minkepb.TaskState_RUNNING && task.GetDesiredState() == minkepb.TaskState_RUNNING {
			running++
			if task.GetNodeId() == l.nodeID {
				t.Errorf("task %s runs on the killed manager's node", task.GetMeta().GetId())
			}
		}
	}
	if running != 2 {
		t.Errorf("%d running tasks, want 2: %v", running, tasks)
	}
}
