package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

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
	spec.StopSignal = c.GetStopSignal()
	spec.Init = c.GetInit()
	if h := c.GetHealthcheck(); h != nil {
		spec.Healthcheck = &runtime.HealthConfig{Test: h.GetTest(), Interval: h.GetInterval().AsDuration(),
			Timeout: h.GetTimeout().AsDuration(), StartPeriod: h.GetStartPeriod().AsDuration(), Retries: int(h.GetRetries())}
	}
	sandboxSpec(&spec, t)
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
	// Preparation is over: ending its context ends the goroutine that
	// watched for a shutdown meanwhile (watch takes over), rather than
	// keeping one per running task.
	cancel()
	r.watch(ctx, c)
}

// runAdopted follows a container a previous worker process started (see
// runtime.Runtime.Adopt): it reports it running again, or how it ended
// while no worker watched.
func (r *runner) runAdopted(ctx context.Context, c Container) {
	defer close(r.done)
	r.a.log.Info("re-adopted container", "task_id", r.id, "pid", c.Pid())
	if _, running := c.Exited(); !running {
		ep, err := r.a.net.adopt(r.current(), r.id)
		if err != nil {
			r.a.log.Warn("re-adopting the container's network failed", "task_id", r.id, "err", err)
		}
		r.addr = address(ep)
	}
	r.watch(ctx, c)
}

// watch reports the running container, its health changes and its exit,
// and stops it when the manager asks. An unhealthy container is killed and
// its task failed, so that the orchestrator replaces it.
func (r *runner) watch(ctx context.Context, c Container) {
	r.mu.Lock()
	r.ctr = c
	r.mu.Unlock()
	health := c.HealthChanges()
	if st, ok := c.Exited(); ok { // adopted after it exited
		r.reportExit(st, false)
		return
	}
	r.reportRunning(c, c.Health())

	exited := make(chan runtime.ExitStatus, 1)
	go func() {
		st, err := c.Wait(context.WithoutCancel(ctx))
		if err != nil {
			st = runtime.ExitStatus{ExitCode: -1}
		}
		exited <- st
	}()
	for {
		select {
		case st := <-exited:
			r.reportExit(st, false)
			return
		case hs := <-health:
			if hs.State != runtime.HealthUnhealthy {
				r.reportRunning(c, hs)
				continue
			}
			r.a.log.Warn("container unhealthy; killing it", "task_id", r.id, "failing_streak", hs.FailingStreak, "output", hs.Output)
			r.stopContainer(ctx, c)
			st := <-exited
			cs := &minkepb.ContainerStatus{ExitCode: int32(st.ExitCode), OomKilled: st.OOMKilled, Health: minkepb.HealthState_UNHEALTHY}
			r.report(minkepb.TaskState_FAILED, "unhealthy container",
				fmt.Sprintf("task: container unhealthy after %d failed healthchecks: %s", hs.FailingStreak, strings.TrimSpace(hs.Output)), cs)
			return
		case <-r.shutdown:
			r.stopContainer(ctx, c)
			r.reportExit(<-exited, true)
			return
		case <-r.detached:
			// The worker is exiting: leave the container for the next one.
			return
		}
	}
}

// stopContainer stops c with its stop signal and grace period, and kills
// it if that fails.
func (r *runner) stopContainer(ctx context.Context, c Container) {
	// Stop sends SIGKILL after the grace period; give it that long plus a
	// margin, and kill outright if it still fails.
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
}

func (r *runner) reportRunning(c Container, hs runtime.HealthStatus) {
	msg := "running"
	if hs.State != runtime.HealthNone {
		msg = "running (health: " + hs.State.String() + ")"
	}
	r.report(minkepb.TaskState_RUNNING, msg, "", &minkepb.ContainerStatus{Pid: int32(c.Pid()), Health: healthState(hs.State), Address: r.addr})
}

func healthState(s runtime.HealthState) minkepb.HealthState {
	switch s {
	case runtime.HealthStarting:
		return minkepb.HealthState_HEALTH_STARTING
	case runtime.HealthHealthy:
		return minkepb.HealthState_HEALTHY
	case runtime.HealthUnhealthy:
		return minkepb.HealthState_UNHEALTHY
	default:
		return minkepb.HealthState_NO_HEALTHCHECK
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

// reconcile makes the local runners match the assignment set. The tasks
// are the session's (see assignmentSet), which nobody changes: runners
// keep them as they are.
func (a *Agent) reconcile(ctx context.Context, tasks []*minkepb.Task) {
	a.mu.Lock()
	defer a.mu.Unlock()
	assigned := map[string]bool{}
	adopted := a.adopted
	a.adopted = nil // the first assignment set claims them; the rest go
	for _, t := range tasks {
		id := t.GetMeta().GetId()
		assigned[id] = true
		r, ok := a.runners[id]
		state := t.GetStatus().GetState()
		if c, found := adopted[id]; found && !ok && state < minkepb.TaskState_COMPLETE {
			// Started by a previous worker process of this node.
			delete(adopted, id)
			r := newRunner(a, t)
			a.runners[id] = r
			if t.GetDesiredState() > minkepb.TaskState_RUNNING {
				r.stop()
			}
			a.wg.Add(1)
			go func() { defer a.wg.Done(); r.runAdopted(ctx, c) }()
			continue
		}
		switch {
		case ok:
			r.mu.Lock()
			r.task = t
			r.mu.Unlock()
			if t.GetDesiredState() > minkepb.TaskState_RUNNING {
				r.stop()
			}
		case state >= minkepb.TaskState_COMPLETE:
			// Finished before this agent knew it (or reported already).
		case t.GetDesiredState() > minkepb.TaskState_RUNNING:
			a.rep.report(id, minkepb.TaskState_SHUTDOWN, "shut down: not running on this worker", "", nil)
		case state >= minkepb.TaskState_RUNNING:
			// A previous worker process started it, and its container is
			// gone (cleaned at start-up: its shim had died).
			a.rep.report(id, minkepb.TaskState_FAILED, "container lost", "task: container lost when the worker restarted", nil)
		default:
			r := newRunner(a, t)
			a.runners[id] = r
			a.wg.Add(1)
			go func() { defer a.wg.Done(); r.run(ctx) }()
		}
	}
	for id, c := range adopted {
		a.log.Info("removing re-adopted container of a task no longer assigned", "task_id", id)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			rctx := context.WithoutCancel(ctx)
			if err := c.Stop(rctx, 0); err != nil {
				a.log.Warn("stopping container failed", "task_id", id, "err", err)
			}
			if err := c.Remove(rctx); err != nil {
				a.log.Warn("removing container failed", "task_id", id, "err", err)
			}
		}()
	}
	for id, r := range a.runners {
		if !assigned[id] {
			delete(a.runners, id)
			a.wg.Add(1)
			go func() { defer a.wg.Done(); r.remove(context.WithoutCancel(ctx)) }()
		}
	}
}
