package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minke-io/minke/internal/shim"
)

// Adopt takes over the containers a previous worker process left under the
// runtime root, for worker start-up (before this Runtime creates
// containers). It returns, sorted by id:
//   - containers whose shim still runs, as running Containers: Wait, Stop,
//     Kill, health and Remove work as for ones this process started;
//   - containers that exited while no worker watched, as exited Containers
//     whose Wait returns the exit status the shim recorded.
//
// Everything else is a leftover and is cleaned like Sweep does: containers
// that were never started, ones whose shim died without recording an exit
// (their processes are killed), and cgroups without a container directory.
func (r *Runtime) Adopt(ctx context.Context) ([]*Container, error) {
	ids, err := r.leftoverIDs()
	if err != nil {
		return nil, err
	}
	var (
		out  []*Container
		errs []error
	)
	for _, id := range ids {
		c, err := r.adoptOne(id)
		if err == nil {
			out = append(out, c)
			continue
		}
		st, _ := r.readState(id) // a missing or torn state file still gets cleaned
		r.log.Info("cleaning leftover container", "container_id", id, "pid", st.Pid, "reason", err)
		if err := r.cleanup(ctx, id, st); err != nil {
			errs = append(errs, err)
		}
	}
	r.resetTmp(&errs)
	return out, errors.Join(errs...)
}

// adoptOne rebuilds the Container id from its files, or says why it cannot.
func (r *Runtime) adoptOne(id string) (*Container, error) {
	dir := r.containerDir(id)
	var rec containerRecord
	if err := readJSONFile(filepath.Join(dir, configFileName), &rec); err != nil {
		return nil, fmt.Errorf("no container record: %w", err)
	}
	if rec.Spec.ID != id {
		return nil, fmt.Errorf("container record names %q", rec.Spec.ID)
	}
	c := r.newContainer(rec)
	if !rec.Spec.SeccompUnconfined {
		// What a healthcheck run inside the adopted container is held to.
		f, err := seccompFilter(rec.Caps)
		if err != nil {
			return nil, err
		}
		c.sandbox.Seccomp = f
	}
	var ex exitFile
	if err := readJSONFile(filepath.Join(dir, exitFileName), &ex); err == nil {
		c.state = stateRunning // finish moves it to exited
		c.finish(ExitStatus{ExitCode: ex.ExitCode, Signal: ex.Signal, ExitedAt: ex.ExitedAt})
		c.log.Info("found container that exited while no worker ran", "exit_code", ex.ExitCode)
		return c, nil
	}
	st, err := r.readState(id)
	if err != nil {
		return nil, fmt.Errorf("never started: %w", err)
	}
	c.mu.Lock()
	err = c.attach(st, nil)
	c.mu.Unlock()
	if err != nil {
		// The shim may have written exit.json and exited between the two reads.
		if rerr := readJSONFile(filepath.Join(dir, exitFileName), &ex); rerr == nil {
			c.state = stateRunning
			c.finish(ExitStatus{ExitCode: ex.ExitCode, Signal: ex.Signal, ExitedAt: ex.ExitedAt})
			return c, nil
		}
		return nil, err
	}
	c.log.Info("adopted running container", "pid", st.Pid, "shim_pid", st.ShimPid)
	return c, nil
}

// Sweep kills and removes every container found under the runtime root or
// the cgroup parent: processes (found through state files and cgroups),
// rootfs mounts, cgroups and directories. It does not spare live
// containers; a worker that wants to keep them calls Adopt instead.
func (r *Runtime) Sweep(ctx context.Context) error {
	ids, err := r.leftoverIDs()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		st, _ := r.readState(id) // a missing or torn state file still gets cleaned
		r.log.Info("sweeping leftover container", "container_id", id, "pid", st.Pid)
		if err := r.cleanup(ctx, id, st); err != nil {
			errs = append(errs, err)
		}
	}
	r.resetTmp(&errs)
	return errors.Join(errs...)
}

// leftoverIDs lists the container ids under the root and the cgroup parent.
func (r *Runtime) leftoverIDs() ([]string, error) {
	ids := map[string]bool{}
	ents, err := os.ReadDir(filepath.Join(r.root, "containers"))
	if err != nil {
		return nil, fmt.Errorf("runtime: sweep: %w", err)
	}
	for _, e := range ents {
		ids[e.Name()] = true
	}
	cgs, err := r.cgroups.List()
	if err != nil {
		return nil, fmt.Errorf("runtime: sweep: %w", err)
	}
	for _, id := range cgs {
		ids[id] = true
	}
	var out []string
	for id := range ids {
		if validID(id) == nil {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (r *Runtime) resetTmp(errs *[]error) {
	for _, d := range []string{"tmp", "trash"} {
		_ = os.RemoveAll(filepath.Join(r.root, d))
		if err := os.MkdirAll(filepath.Join(r.root, d), 0o711); err != nil {
			*errs = append(*errs, err)
		}
	}
}

// cleanup kills whatever still runs for container id (the recorded init
// and shim if they are still the same processes, and every process of its
// cgroup), waits for
// those processes to die, then unmounts the rootfs and deletes the cgroup
// and the container directory.
func (r *Runtime) cleanup(ctx context.Context, id string, st stateFile) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	kill := func(p int, wantStart uint64) {
		fd, err := unix.PidfdOpen(p, 0)
		if err != nil {
			return // already gone
		}
		if wantStart != 0 {
			// Check after opening the pidfd: from here on p cannot be recycled.
			if st, err := shim.PidStartTime(p); err != nil || st != wantStart {
				unix.Close(fd)
				return
			}
		}
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		fds = append(fds, fd)
	}
	if st.Pid > 0 && st.PidStart != 0 {
		kill(st.Pid, st.PidStart)
	}
	// The shim too, so that it writes nothing into the directory once it
	// is gone.
	if st.ShimPid > 0 && st.ShimStart != 0 {
		kill(st.ShimPid, st.ShimStart)
	}
	if procs, err := r.cgroups.Procs(id); err == nil {
		for _, p := range procs {
			kill(p, 0)
		}
	}
	for _, fd := range fds {
		if err := waitPidfd(ctx, fd); err != nil {
			return fmt.Errorf("runtime: cleanup of container %s: waiting for processes: %w", id, err)
		}
	}
	dir := r.containerDir(id)
	if err := unmountAll(filepath.Join(dir, "rootfs")); err != nil {
		return err
	}
	if err := r.deleteCgroup(ctx, id); err != nil {
		return err
	}
	return r.discard(dir)
}

// discard removes a container directory: it renames it into the trash at
// once, so that the id is free and nothing of the container is visible any
// more, and deletes it in the background (deleting the overlay upper and
// work trees costs milliseconds that no caller needs to wait for). Close
// waits for the deletions; Adopt and Sweep empty a trash left by an
// earlier process.
func (r *Runtime) discard(dir string) error {
	trash := filepath.Join(r.root, "trash", filepath.Base(dir)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	err := os.Rename(dir, trash)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("runtime: removing container dir %s: %w", dir, err)
		}
		return nil
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		if err := os.RemoveAll(trash); err != nil {
			r.log.Warn("deleting a removed container's files", "dir", trash, "error", err)
		}
	}()
	return nil
}

// deleteCgroup retries while the kernel still counts exiting tasks in the
// cgroup (rmdir gives EBUSY); there is no notification to wait on in v1.
func (r *Runtime) deleteCgroup(ctx context.Context, id string) error {
	backoff := 5 * time.Millisecond
	for {
		err := r.cgroups.Delete(id)
		if err == nil || !errors.Is(err, unix.EBUSY) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("runtime: cgroup of container %s still busy: %w", id, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// waitPidfd blocks until the process behind fd has exited or ctx is done.
func waitPidfd(ctx context.Context, fd int) error {
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if n > 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
