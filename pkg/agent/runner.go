package agent

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/runtime"
)

// runner drives one task's container through its lifecycle:
// ACCEPTED → PREPARING (pull, rootfs) → STARTING → RUNNING → COMPLETE |
// FAILED, or SHUTDOWN when the manager asks it to stop.
type runner struct {
	a *Agent
	// id and spec are fixed at creation; task (under mu) is the latest copy
	// from the manager.
	id   string
	spec runtime.ContainerSpec
	addr string // the container's address (CIDR), once attached

	shutdownOnce sync.Once
	shutdown     chan struct{} // closed: the manager wants the task stopped
	detachOnce   sync.Once
	detached     chan struct{} // closed: the agent is exiting; leave the container
	done         chan struct{} // closed when run returns

	mu   sync.Mutex
	task *minkepb.Task
	ctr  Container
}

func newRunner(a *Agent, t *minkepb.Task) *runner {
	return &runner{a: a, id: t.GetMeta().GetId(), spec: containerSpec(t), task: t,
		shutdown: make(chan struct{}), detached: make(chan struct{}), done: make(chan struct{})}
}

func (r *runner) stop()   { r.shutdownOnce.Do(func() { close(r.shutdown) }) }
func (r *runner) detach() { r.detachOnce.Do(func() { close(r.detached) }) }

// remove stops the task, waits for the runner, and deletes the container.
func (r *runner) remove(ctx context.Context) {
	r.stop()
	<-r.done
	r.mu.Lock()
	c := r.ctr
	r.mu.Unlock()
	if c != nil {
		if err := c.Remove(ctx); err != nil {
			r.a.log.Warn("removing container failed", "task_id", r.id, "err", err)
		}
	}
	r.a.net.detach(r.id)
}

// current returns the latest task the manager sent.
func (r *runner) current() *minkepb.Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.task
}

func (r *runner) report(state minkepb.TaskState, msg, errMsg string, ctr *minkepb.ContainerStatus) {
	r.a.rep.report(r.id, state, msg, errMsg, ctr)
}

func containerSpec(t *minkepb.Task) runtime.ContainerSpec {
	c := t.GetSpec().GetContainer()
	spec := runtime.ContainerSpec{
		ID:          t.GetMeta().GetId(),
		Image:       t.GetImage(),
		Args:        c.GetArgs(),
		Env:         c.GetEnv(),
		WorkingDir:  c.GetDir(),
		User:        c.GetUser(),
		CapAdd:      c.GetCapAdd(),
		CapDrop:     c.GetCapDrop(),
		MemoryLimit: t.GetSpec().GetResources().GetLimits().GetMemoryBytes(),
		NanoCPUs:    t.GetSpec().GetResources().GetLimits().GetNanoCpus(),
	}
	if len(c.GetCommand()) > 0 {
		spec.Entrypoint = c.GetCommand()
	}
	if d := c.GetStopGracePeriod(); d != nil {
		spec.StopGracePeriod = d.AsDuration()
	}
	return spec
}

func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	// Preparation is cancelled by a shutdown request or the agent exiting.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.shutdown:
		case <-r.detached:
		case <-pctx.Done():
		}
		cancel()
	}()

	r.report(minkepb.TaskState_ACCEPTED, "accepted", "", nil)
	ep, err := r.a.net.attach(r.current(), &r.spec)
	if err != nil {
		r.report(minkepb.TaskState_REJECTED, "network setup failed", err.Error(), nil)
		return
	}
	r.addr = address(ep)
	r.report(minkepb.TaskState_PREPARING, "pulling image "+r.spec.Image, "", nil)
	progress := func(p runtime.PullProgress) { r.report(minkepb.TaskState_PREPARING, p.String(), "", nil) }
	c, err := r.a.rt.Create(runtime.WithPullProgress(pctx, progress), r.spec)
	if err == nil {
		if err = r.a.net.writeEtc(c, ep); err != nil {
			_ = c.Remove(context.WithoutCancel(ctx))
		}
	}
	if err != nil {
		r.a.net.detach(r.id)
		if r.stopping() {
			r.report(minkepb.TaskState_SHUTDOWN, "shut down before start", "", nil)
			return
		}
		r.report(minkepb.TaskState_REJECTED, preparingFailed(err), err.Error(), nil)
		return
	}
	r.mu.Lock()
	r.ctr = c
	r.mu.Unlock()
	if r.stopping() {
		r.report(minkepb.TaskState_SHUTDOWN, "shut down before start", "", nil)
		return
	}
	r.report(minkepb.TaskState_STARTING, "starting", "", nil)
	if err := c.Start(pctx); err != nil {
		r.report(minkepb.TaskState_FAILED, "starting failed", err.Error(), nil)
		return
	}
	r.report(minkepb.TaskState_RUNNING, "running", "", &minkepb.ContainerStatus{Pid: int32(c.Pid()), Address: r.addr})

	exited := make(chan runtime.ExitStatus, 1)
	go func() {
		st, err := c.Wait(context.WithoutCancel(ctx))
		if err != nil {
			st = runtime.ExitStatus{ExitCode: -1}
		}
		exited <- st
	}()
	select {
	case st := <-exited:
		r.reportExit(st, false)
	case <-r.shutdown:
		// Stop sends SIGTERM and SIGKILL after the grace period; give it
		// that long plus a margin, and kill outright if it still fails.
		grace := r.spec.StopGracePeriod
		if grace <= 0 {
			grace = 10 * time.Second
		}
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), grace+30*time.Second)
		err := c.Stop(sctx, 0)
		scancel()
		if err != nil {
			r.a.log.Warn("stopping container failed; killing it", "task_id", r.id, "err", err)
			_ = c.Kill(syscall.SIGKILL)
		}
		r.reportExit(<-exited, true)
	case <-r.detached:
		// The worker is exiting: leave the container for the next one.
	}
}

func (r *runner) stopping() bool {
	select {
	case <-r.shutdown:
		return true
	case <-r.detached:
		return true
	default:
		return false
	}
}

func (r *runner) reportExit(st runtime.ExitStatus, requested bool) {
	cs := &minkepb.ContainerStatus{ExitCode: int32(st.ExitCode), OomKilled: st.OOMKilled, Address: r.addr}
	switch {
	case requested:
		r.report(minkepb.TaskState_SHUTDOWN, fmt.Sprintf("shut down (exit code %d)", st.ExitCode), "", cs)
	case st.OOMKilled:
		r.report(minkepb.TaskState_FAILED, "OOMKilled", fmt.Sprintf("task: killed by the OOM killer: memory limit reached (exit code %d)", st.ExitCode), cs)
	case st.ExitCode == 0:
		r.report(minkepb.TaskState_COMPLETE, "finished", "", cs)
	default:
		r.report(minkepb.TaskState_FAILED, "exited", fmt.Sprintf("task: non-zero exit (%d)", st.ExitCode), cs)
	}
}

// reconcile makes the local runners match the assignment set.
func (a *Agent) reconcile(ctx context.Context, tasks []*minkepb.Task) {
	a.mu.Lock()
	defer a.mu.Unlock()
	assigned := map[string]bool{}
	for _, t := range tasks {
		id := t.GetMeta().GetId()
		assigned[id] = true
		r, ok := a.runners[id]
		state := t.GetStatus().GetState()
		switch {
		case ok:
			r.mu.Lock()
			r.task = proto.Clone(t).(*minkepb.Task)
			r.mu.Unlock()
			if t.GetDesiredState() > minkepb.TaskState_RUNNING {
				r.stop()
			}
		case state >= minkepb.TaskState_COMPLETE:
			// Finished before this agent knew it (or reported already).
		case t.GetDesiredState() > minkepb.TaskState_RUNNING:
			a.rep.report(id, minkepb.TaskState_SHUTDOWN, "shut down: not running on this worker", "", nil)
		case state >= minkepb.TaskState_RUNNING:
			// A previous worker process started it; its container was
			// swept when this one started.
			a.rep.report(id, minkepb.TaskState_FAILED, "container lost", "task: container lost when the worker restarted", nil)
		default:
			r := newRunner(a, proto.Clone(t).(*minkepb.Task))
			a.runners[id] = r
			a.wg.Add(1)
			go func() { defer a.wg.Done(); r.run(ctx) }()
		}
	}
	for id, r := range a.runners {
		if !assigned[id] {
			delete(a.runners, id)
			a.wg.Add(1)
			go func() { defer a.wg.Done(); r.remove(context.WithoutCancel(ctx)) }()
		}
	}
}
