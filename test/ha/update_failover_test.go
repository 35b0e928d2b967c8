//go:build linux

package ha

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestLeaderKillDuringUpdate kills the leader in the middle of a rolling
// update of real containers: the new leader resumes it from the store (the
// Updater keeps no state of its own), and it completes with every task on
// the new spec.
func TestLeaderKillDuringUpdate(t *testing.T) {
	c := newCluster(t, 3, 0, options{worker: true})
	l := c.leader()
	c.mustCtl(l, "image", "push", helloTar)
	via := c.follower()
	// Through the API: `swarmctl --host SOCKET service create` is read as
	// create's own --host (an /etc/hosts entry) on this tree.
	ctx, cancel := context.WithTimeout(context.Background(), 2*callTimeout)
	defer cancel()
	svc, err := c.client(via).CreateService(ctx, &minkepb.ServiceSpec{
		Name: "web",
		Task: &minkepb.TaskSpec{
			Container: &minkepb.ContainerSpec{Image: "hello:latest", Args: []string{"-listen", ":8080"}},
			Restart:   &minkepb.RestartPolicy{Delay: durationpb.New(0)},
		},
		Mode:         &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 3}},
		UpdateConfig: &minkepb.UpdateConfig{Parallelism: 1, Delay: durationpb.New(3 * time.Second), Monitor: durationpb.New(time.Second)},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "3 tasks running", func() (bool, string) {
		tasks, err := c.client(via).ListTasks(ctx, svc.GetMeta().GetId())
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, task := range tasks {
			if task.GetStatus().GetState() == minkepb.TaskState_RUNNING {
				n++
			}
		}
		return n == 3, fmt.Sprintf("%d running", n)
	})
	if _, err := c.client(via).ModifyService(ctx, "web", func(s *minkepb.ServiceSpec) error {
		s.Task.Container.Env = append(s.Task.Container.Env, "V=2")
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	updated := func(m *mgr) (int, *minkepb.Service, error) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		svc, err := c.client(m).ResolveService(ctx, "web")
		if err != nil {
			return 0, nil, err
		}
		tasks, err := c.client(m).ListTasks(ctx, "web")
		if err != nil {
			return 0, nil, err
		}
		n := 0
		for _, task := range tasks {
			if task.GetDesiredState() == minkepb.TaskState_RUNNING && task.GetStatus().GetState() == minkepb.TaskState_RUNNING &&
				slices.Contains(task.GetSpec().GetContainer().GetEnv(), "V=2") {
				n++
			}
		}
		return n, svc, nil
	}
	c.eventually(30*time.Second, "the update half way", func() (bool, string) {
		n, svc, err := updated(via)
		if err != nil {
			return false, err.Error()
		}
		st := svc.GetUpdateStatus().GetState()
		return n >= 1 && st == minkepb.UpdateStatus_UPDATING, fmt.Sprintf("%d updated, %v", n, st)
	})
	l.proc.Kill()
	nl := c.leader()
	t.Logf("killed %s mid-update; %s leads", l.name(), nl.name())
	c.eventually(60*time.Second, "the update completed under the new leader", func() (bool, string) {
		n, svc, err := updated(nl)
		if err != nil {
			return false, err.Error()
		}
		st := svc.GetUpdateStatus()
		return n == 3 && st.GetState() == minkepb.UpdateStatus_COMPLETED, fmt.Sprintf("%d of 3 running V=2, %v: %s", n, st.GetState(), st.GetMessage())
	})
}
