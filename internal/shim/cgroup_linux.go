package shim

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// StartInCgroup starts cmd with its process in cgroup cg from its first
// instruction, without migrating it there afterwards.
//
// Migrating a process (a write of its pid to cgroup.procs) takes the
// kernel's global cgroup_threadgroup_rwsem for writing, which waits for an
// RCU grace period: about 10 ms per container start on the test machine,
// two thirds of the whole start. A child is born in its parent thread's
// cgroups instead, and moving only the calling thread (v1: "0" written to
// tasks) takes no global lock; on v2 clone3's CLONE_INTO_CGROUP places the
// child directly.
func StartInCgroup(cg Cgroup, cmd *exec.Cmd) error {
	switch {
	case cg.Version == 1 && len(cg.Dirs) == len(cg.Controllers) && cg.Mount != "":
		return startInV1(cg, cmd)
	case cg.Version == 2 && len(cg.Dirs) == 1:
		return startInV2(cg.Dirs[0], cmd)
	}
	return fmt.Errorf("cgroup placement %+v: want version 1 with a mount and one directory per controller, or version 2 with one directory", cg)
}

// startInV1 forks cmd from a locked thread that first joins the container's
// cgroup in every hierarchy, and then goes back to where it was, so that
// no thread of this process stays in the container's cgroup once it
// returns. If it cannot go back, the thread is left locked, and the Go
// runtime ends it with the goroutine.
func startInV1(cg Cgroup, cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		home, err := threadCgroups()
		if err != nil {
			errc <- err
			return
		}
		for _, dir := range cg.Dirs {
			// The tasks file moves one thread; "0" is the writer itself.
			if err := writeCgroupFile(dir, "tasks", "0"); err != nil {
				errc <- err
				return // possibly half moved: the thread ends here
			}
		}
		err = cmd.Start()
		back := true
		for _, ctrl := range cg.Controllers {
			p, ok := home[ctrl]
			if !ok || writeCgroupFile(filepath.Join(cg.Mount, ctrl, p), "tasks", "0") != nil {
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
		return nil, fmt.Errorf("reading own cgroups: %w", err)
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

// startInV2 starts cmd with clone3(CLONE_INTO_CGROUP); on kernels without
// it (before 5.7) the process is started and then moved.
func startInV2(dir string, cmd *exec.Cmd) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening cgroup %s: %w", dir, err)
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
	if err := writeCgroupFile(dir, "cgroup.procs", strconv.Itoa(cmd.Process.Pid)); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	return nil
}

// writeCgroupFile writes value to dir/file with the raw calls (open,
// write, close): an os.File would also register the file, which cgroupfs
// makes pollable, with the Go poller and take it out again, two more
// system calls for each of the ten writes around the init's fork on v1.
func writeCgroupFile(dir, file, value string) error {
	p := filepath.Join(dir, file)
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err == nil {
		_, err = unix.Write(fd, []byte(value))
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("writing %q to %s: %w", value, p, err)
	}
	return nil
}
