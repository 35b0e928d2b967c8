package ha

import (
	"context"
	"fmt"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestWorkerKeepsContainersWhenItsManagerDies: a worker holds its session
// with the leader; the leader is SIGKILLed. The worker reconnects to the
// new leader (a manager it learned at join or by gossip), its containers
// keep running untouched (same tasks, same processes, no replacements),
// and it takes new assignments from the new leader.
func TestWorkerKeepsContainersWhenItsManagerDies(t *testing.T) {
	c := newCluster(t, 3, 1, options{})
	l := c.leader()
	c.mustCtl(l, "image", "push", helloTar)
	c.startWorker(3, "w1", c.workerToken(), l)
	wid := c.waitNodeReady(l, "w1").GetMeta().GetId()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	svc, err := c.client(l).CreateService(ctx, &minkepb.ServiceSpec{
		Name: "keep",
		Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "hello:latest"}},
		Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// running maps task ID -> container pid of the service's RUNNING
	// tasks, as m reports them; all is every task's state.
	running := func(m *mgr) (map[string]int32, string, error) {
		cctx, ccancel := context.WithTimeout(ctx, callTimeout)
		defer ccancel()
		tasks, err := c.client(m).ListTasks(cctx, svc.GetMeta().GetId())
		if err != nil {
			return nil, "", err
		}
		out, all := map[string]int32{}, ""
		for _, task := range tasks {
			all += fmt.Sprintf(" %s:%s@%s", task.GetMeta().GetId()[:6], task.GetStatus().GetState(), task.GetNodeId())
			if task.GetStatus().GetState() == minkepb.TaskState_RUNNING && task.GetNodeId() == wid {
				out[task.GetMeta().GetId()] = task.GetStatus().GetContainer().GetPid()
			}
		}
		return out, all, nil
	}
	var before map[string]int32
	c.eventually(45*time.Second, "2 tasks running on w1", func() (bool, string) {
		r, all, err := running(l)
		if err != nil {
			return false, err.Error()
		}
		before = r
		return len(r) == 2, all
	})

	l.proc.Kill()
	nl := c.leader()
	if nl == l {
		t.Fatal("the killed manager still leads")
	}
	t.Logf("killed %s; %s leads", l.name(), nl.name())
	// The worker's session moves to the new leader: a new assignment runs.
	if _, err := c.client(nl).ModifyService(ctx, "keep", func(s *minkepb.ServiceSpec) error {
		s.Mode = &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 3}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var after map[string]int32
	c.eventually(45*time.Second, "3 tasks running on w1 under the new leader", func() (bool, string) {
		r, all, err := running(nl)
		if err != nil {
			return false, err.Error()
		}
		after = r
		return len(r) == 3, all
	})
	for id, pid := range before {
		if got, ok := after[id]; !ok || got != pid {
			t.Errorf("task %s: running with pid %d before the manager died, now running=%v pid %d", id, pid, ok, got)
		}
	}
	if n := c.waitNodeReady(nl, "w1"); n.GetMeta().GetId() != wid {
		t.Errorf("w1 is node %s now, was %s", n.GetMeta().GetId(), wid)
	}
	_, all, _ := running(nl)
	t.Logf("tasks before %v, after %v; all:%s", before, after, all)
}
