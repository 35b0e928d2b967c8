//go:build linux

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/client"
)

// createWithHealthcheck creates a one-replica service whose healthcheck
// runs /hello with exitArgs inside the container every interval (the
// hello image has no shell, so --health-cmd cannot express it).
func createWithHealthcheck(t *testing.T, m *Proc, name string, interval time.Duration, exitArgs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, m.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, err = cl.CreateService(ctx, &minkepb.ServiceSpec{
		Name: name,
		Task: &minkepb.TaskSpec{
			Container: &minkepb.ContainerSpec{Image: "hello:latest", Args: []string{"-listen", ":8080"},
				Healthcheck: &minkepb.HealthConfig{Test: append([]string{"CMD", "/hello"}, exitArgs...),
					Interval: durationpb.New(interval), Timeout: durationpb.New(5 * time.Second), Retries: 1}},
			Restart: &minkepb.RestartPolicy{Delay: durationpb.New(0)},
		},
		Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpdateWaitsForHealthy: with a real healthcheck (every 2s), a
// start-first update stops the old task only once the new one is HEALTHY,
// not as soon as it runs.
func TestUpdateWaitsForHealthy(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	createWithHealthcheck(t, m, "hc", 2*time.Second, "-exit", "0")
	c.Eventually(30*time.Second, "hc healthy", func() (bool, string) {
		for _, task := range c.Tasks("hc") {
			if task.GetStatus().GetContainer().GetHealth() == minkepb.HealthState_HEALTHY {
				return true, ""
			}
		}
		return false, "not healthy yet"
	})
	c.MustCtl("service", "update", "--env-add", "V=2", "--update-order", "start-first", "--update-monitor", "200ms", "hc")
	ts := bySlot(c.Tasks("hc"))[1]
	if len(ts) < 2 {
		t.Fatalf("%d tasks in slot 1, want the old one and its replacement", len(ts))
	}
	old, cur := ts[len(ts)-2], ts[len(ts)-1]
	if h := cur.GetStatus().GetContainer().GetHealth(); h != minkepb.HealthState_HEALTHY {
		t.Fatalf("new task health %v, want HEALTHY", h)
	}
	created := cur.GetMeta().GetCreatedAt().AsTime()
	stopped := old.GetStatus().GetTimestamp().AsTime()
	healthy := cur.GetStatus().GetTimestamp().AsTime()
	if stopped.Before(healthy) {
		t.Errorf("old task stopped at %v, before the new one was healthy at %v", stopped, healthy)
	}
	// The first check runs one interval after the start: the old task
	// must have outlived the new one's first two seconds.
	if gap := stopped.Sub(created); gap < 1500*time.Millisecond {
		t.Errorf("old task stopped %v after its replacement was created; the update did not wait for the healthcheck", gap)
	}
}

// TestUpdateToUnhealthyRollsBack: an update whose tasks run but never get
// healthy (the healthcheck exits 1) fails and rolls back.
func TestUpdateToUnhealthyRollsBack(t *testing.T) {
	c := NewCluster(t)
	m := c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()
	createWithHealthcheck(t, m, "hc", time.Second, "-exit", "0")
	c.WaitRunning("hc", 1, 30*time.Second)
	// The update changes only the healthcheck, to one that always fails.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, m.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.ModifyService(ctx, "hc", func(s *minkepb.ServiceSpec) error {
		s.Task.Container.Healthcheck.Test = []string{"CMD", "/hello", "-exit", "1"}
		s.UpdateConfig = &minkepb.UpdateConfig{Parallelism: 1, FailureAction: minkepb.UpdateConfig_ROLLBACK, Monitor: durationpb.New(time.Second)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c.Eventually(40*time.Second, "update rolled back", func() (bool, string) {
		st := serviceJSON(t, c, "hc").GetUpdateStatus()
		return st.GetState() == minkepb.UpdateStatus_ROLLBACK_COMPLETED, st.GetState().String() + ": " + st.GetMessage()
	})
	svc := serviceJSON(t, c, "hc")
	if !strings.Contains(strings.Join(svc.GetSpec().GetTask().GetContainer().GetHealthcheck().GetTest(), " "), "-exit 0") {
		t.Errorf("spec after rollback has healthcheck %v, want the healthy one back", svc.GetSpec().GetTask().GetContainer().GetHealthcheck().GetTest())
	}
	c.Eventually(20*time.Second, "a healthy task of the old spec", func() (bool, string) {
		for _, task := range c.Tasks("hc") {
			if live(task) && task.GetStatus().GetContainer().GetHealth() == minkepb.HealthState_HEALTHY {
				return true, ""
			}
		}
		return false, "none healthy"
	})
}

func live(t *minkepb.Task) bool { return t.GetDesiredState() == minkepb.TaskState_RUNNING }
