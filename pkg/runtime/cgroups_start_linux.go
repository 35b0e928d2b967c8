package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// startInCgroup starts cmd with its process in container id's cgroup from
// its first instruction, without migrating it there afterwards.
//
// Migrating a process (a write of its pid to cgroup.procs) takes the
// kernel's global cgroup_threadgroup_rwsem for writing, which waits for an
// RCU grace period: about 10 ms per container start on the test machine,
// two thirds of the whole start. A child is born in its parent thread's
// cgroups instead, and moving only the calling thread (v1: "0" written to
// tasks) takes no global lock; on v2 clone3's CLONE_INTO_CGROUP places the
// child directly.
func startInCgroup(cg cgroupManager, id string, cmd *exec.Cmd) error {
	switch c := cg.(type) {
	case *cgroupV1:
		return c.startIn(id, cmd)
	case *cgroupV2:
		return c.startIn(id, cmd)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := cg.AddProc(id, cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	return nil
}

// startIn forks cmd from a locked thread that first joins the container's
// cgroup in every hierarchy, and then goes back to where it was, so that
// no thread of this process stays in the container's cgroup once startIn
// returns. If it cannot go back, the thread is left locked, and the Go
// runtime ends it with the goroutine.
func (c *cgroupV1) startIn(id string, cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		home, err := threadCgroups()
		if err != nil {
			errc <- err
			return
		}
		ctrls := c.controllers()
		for _, ctrl := range ctrls {
			// The tasks file moves one thread; "0" is the writer itself.
			if err := writeCgroupFile(c.dir(ctrl, id), "tasks", "0"); err != nil {
				errc <- err
				return // possibly half moved: the thread ends here
			}
		}
		err = cmd.Start()
		back := true
		for _, ctrl := range ctrls {
			p, ok := home[ctrl]
			if !ok || writeCgroupFile(filepath.Join(c.mount, ctrl, p), "tasks", "0") != nil {
				back = false // the thread ends with this goroutine
				break
			}
		}
		if back {
			goruntime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// threadCgroups maps each v1 controller to the calling thread's cgroup
// path in it, from /proc/thread-self/cgroup ("4:cpu,cpuacct:/a/b").
func threadCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("runtime: reading own cgroups: %w", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			m[ctrl] = parts[2]
		}
	}
	return m, nil
}

// startIn starts cmd with clone3(CLONE_INTO_CGROUP); on kernels without it
// (before 5.7) the process is started and then moved.
func (c *cgroupV2) startIn(id string, cmd *exec.Cmd) error {
	fd, err := unix.Open(c.dir(id), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("runtime: opening cgroup of container %s: %w", id, err)
	}
	defer unix.Close(fd)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = fd
	err = cmd.Start()
	if err == nil || !errors.Is(err, unix.ENOSYS) {
		return err
	}
	cmd.SysProcAttr.UseCgroupFD = false
	retry := &exec.Cmd{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir,
		Stdin: cmd.Stdin, Stdout: cmd.Stdout, Stderr: cmd.Stderr, ExtraFiles: cmd.ExtraFiles, SysProcAttr: cmd.SysProcAttr}
	*cmd = *retry
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := c.AddProc(id, cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	return nil
}
