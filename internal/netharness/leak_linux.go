package netharness

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Leaks lists what of this harness still exists on the machine: network
// namespaces (`ip netns list`), root-namespace links (`ip link`), processes
// it started that are still alive, and any process inside one of its
// namespaces (/proc/*/ns/net): now, for a namespace that still exists, or
// when Close deleted it. After Close it should be empty.
//
// A deleted namespace is not looked for again: the kernel reuses the inode
// number of a freed namespace for the next one created, by any process, so
// "net:[inode]" may by then name another test's container.
func (h *Harness) Leaks() []string {
	var leaks []string
	netns, links, err := existing(h)
	if err != nil {
		leaks = append(leaks, err.Error())
	}
	h.mu.Lock()
	leaks = append(leaks, h.closeLeaks...)
	h.mu.Unlock()
	for n := range netns {
		leaks = append(leaks, "netns "+n)
	}
	for l := range links {
		leaks = append(leaks, "link "+l)
	}
	h.mu.Lock()
	runs := append([]procRun(nil), h.runs...)
	h.mu.Unlock()
	for _, r := range runs {
		if r.start != "" && procStart(r.pid) == r.start {
			leaks = append(leaks, fmt.Sprintf("process %d (state %s)", r.pid, procState(r.pid)))
		}
	}
	ids := map[string]int{}
	for _, hst := range h.hosts {
		if hst.nsID != "" && netns[hst.name] && hst.mountedID() == hst.nsID {
			ids[hst.nsID] = hst.index
		}
	}
	leaks = append(leaks, describeNetnsProcs(netnsProcs(ids))...)
	sort.Strings(leaks)
	return leaks
}

func describeNetnsProcs(procs map[int]int) []string {
	var out []string
	for pid, i := range procs {
		out = append(out, fmt.Sprintf("process %d in host %d's namespace", pid, i))
	}
	return out
}

// mountedID is the "net:[inode]" of the namespace now mounted at the
// host's netns path, or "" if none is.
func (hst *Host) mountedID() string {
	var st syscall.Stat_t
	if err := syscall.Stat(hst.NetnsPath(), &st); err != nil {
		return ""
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

// LeakCheck closes h when the test ends and fails the test if anything of
// it remains (see Leaks). Call it right after New.
func LeakCheck(t testing.TB, h *Harness) {
	t.Helper()
	t.Cleanup(func() {
		h.Close()
		if leaks := h.Leaks(); len(leaks) > 0 {
			t.Errorf("netharness: left behind after Close: %v", leaks)
		}
	})
}

// netnsProcs maps the PID of every process whose network namespace is in
// ids ("net:[inode]" → host index) to that host index.
func netnsProcs(ids map[string]int) map[int]int {
	found := map[int]int{}
	if len(ids) == 0 {
		return found
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return found
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			continue // gone, or a zombie that no longer holds a namespace
		}
		if i, ok := ids[ns]; ok {
			found[pid] = i
		}
	}
	return found
}

// killNetnsProcs SIGKILLs every process inside the namespaces in ids
// (including ones that left the harness's process groups) until none is
// left, for at most killTimeout.
func killNetnsProcs(ids map[string]int) error {
	deadline := time.Now().Add(killTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		procs := netnsProcs(ids)
		if len(procs) == 0 {
			return nil
		}
		for pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still in the hosts' namespaces after %v: %v", killTimeout, procs)
		}
		<-tick.C
	}
}
