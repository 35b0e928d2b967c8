package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Sweep kills and removes every container found under the runtime root or
// the cgroup parent: processes (found through state files and cgroups),
// rootfs mounts, cgroups and directories. It is meant for worker start-up,
// to clean up after a previous worker process, and must run before this
// Runtime creates containers: it does not spare live ones.
func (r *Runtime) Sweep(ctx context.Context) error {
	ids := map[string]bool{}
	ents, err := os.ReadDir(filepath.Join(r.root, "containers"))
	if err != nil {
		return fmt.Errorf("runtime: sweep: %w", err)
	}
	for _, e := range ents {
		ids[e.Name()] = true
	}
	cgs, err := r.cgroups.List()
	if err != nil {
		return fmt.Errorf("runtime: sweep: %w", err)
	}
	for _, id := range cgs {
		ids[id] = true
	}
	var errs []error
	for id := range ids {
		if validID(id) != nil {
			continue
		}
		st, _ := r.readState(id) // a missing or torn state file still gets cleaned
		r.log.Info("sweeping leftover container", "container_id", id, "pid", st.Pid)
		if err := r.cleanup(ctx, id, st.Pid, st.PidStart); err != nil {
			errs = append(errs, err)
		}
	}
	_ = os.RemoveAll(filepath.Join(r.root, "tmp"))
	if err := os.MkdirAll(filepath.Join(r.root, "tmp"), 0o711); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cleanup kills whatever still runs for container id (the recorded pid if
// it is still the same process, and every process of its cgroup), waits for
// those processes to die, then unmounts the rootfs and deletes the cgroup
// and the container directory.
func (r *Runtime) cleanup(ctx context.Context, id string, pid int, pidStart uint64) error {
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
			if st, err := pidStartTime(p); err != nil || st != wantStart {
				unix.Close(fd)
				return
			}
		}
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		fds = append(fds, fd)
	}
	if pid > 0 && pidStart != 0 {
		kill(pid, pidStart)
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
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("runtime: removing container dir %s: %w", dir, err)
	}
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

// pidStartTime is field 22 of /proc/<pid>/stat: the process start time in
// clock ticks since boot, which tells a process from a later one that
// reuses its pid.
func pidStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("runtime: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("runtime: malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
