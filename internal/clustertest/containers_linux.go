package clustertest

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"
)

// LivePids lists the processes in the nodes' cgroups that have not exited
// (zombies run nothing), each once.
func LivePids(nodeIDs ...string) []int {
	var out []int
	for _, cg := range NodeCgroups(nodeIDs...) {
		for _, pid := range CgroupPids(cg) {
			if _, st, err := ProcStat(pid); err == nil && !Exited(st) && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// KillContainers SIGKILLs every process in the nodes' cgroups, and reaps
// the ones that are this process's children, until none is left or bound
// passes. It returns how many live processes it found at first.
func KillContainers(bound time.Duration, nodeIDs ...string) (found int, err error) {
	deadline := time.Now().Add(bound)
	first := true
	for {
		// A pid is listed once per hierarchy (cgroup v1): count it once.
		live := map[int]bool{}
		for _, cg := range NodeCgroups(nodeIDs...) {
			for _, pid := range CgroupPids(cg) {
				if _, st, err := ProcStat(pid); err != nil || !Exited(st) {
					live[pid] = true
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				ReapIfChild(pid)
			}
		}
		if first {
			found, first = len(live), false
		}
		if len(live) == 0 {
			return found, nil
		}
		if time.Now().After(deadline) {
			return found, fmt.Errorf("container processes of nodes %v still alive after %s: %v", nodeIDs, bound, LivePids(nodeIDs...))
		}
		time.Sleep(5 * time.Millisecond) // the kernel delivering SIGKILL; re-checked above
	}
}

// RemoveCgroup removes an empty cgroup, retrying for up to 5s while the
// kernel still counts an exiting process in it (whose pids it kills and
// reaps meanwhile). A cgroup that is gone already is no error.
func RemoveCgroup(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("removing cgroup %s (pids %v): %w", dir, CgroupPids(dir), err)
		}
		for _, pid := range CgroupPids(dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			ReapIfChild(pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RemoveContainers removes what the containers of nodeIDs left on the
// host: it kills their processes (KillContainers, up to 10s), unmounts
// what is mounted below dir (their overlay roots) and removes their
// cgroups in every hierarchy. What it cannot remove fails tb; it is meant
// for tb's cleanup, after the nodes' processes have stopped.
func RemoveContainers(tb testing.TB, dir string, nodeIDs []string) {
	tb.Helper()
	if _, err := KillContainers(10*time.Second, nodeIDs...); err != nil {
		tb.Errorf("cleanup: %v", err)
	}
	for _, m := range MountsUnder(dir) {
		if err := Unmount(m.MountPoint); err != nil {
			tb.Errorf("cleanup: unmounting %s: %v", m.MountPoint, err)
		}
	}
	for _, cg := range NodeCgroups(nodeIDs...) {
		if err := RemoveCgroup(cg); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	}
	RemoveNetworks(tb, dir)
}
