package runtime

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minke-io/minke/internal/testimage"
)

// TestAdoptAfterWorkerRestart plays a worker restart inside one process: a
// second Runtime on the same root stands for the new worker. It must adopt
// the container that still runs (same process, still controllable), report
// the ones that exited meanwhile with their real exit codes, and clean the
// one that was never started.
func TestAdoptAfterWorkerRestart(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, helloImage(t), "hello:latest")
	ctx := testCtx(t)

	live := create(t, r, ContainerSpec{ID: "live", Image: ref})
	exited7 := create(t, r, ContainerSpec{ID: "exit7", Image: ref, Args: []string{"-exit", "7"}})
	killed := create(t, r, ContainerSpec{ID: "killed", Image: ref})
	never := create(t, r, ContainerSpec{ID: "never", Image: ref})
	for _, c := range []*Container{live, exited7, killed} {
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitForLog(t, r, "live", "hello from live")
	waitForLog(t, r, "killed", "hello from killed")
	st := shimState(t, r, "live")
	if sid, _ := unix.Getsid(st.ShimPid); sid != st.ShimPid {
		t.Errorf("shim %d is in session %d, want a session of its own", st.ShimPid, sid)
	}
	if procs, _ := r.cgroups.Procs("live"); len(procs) != 1 || procs[0] != live.Pid() {
		t.Errorf("cgroup of live holds %v, want only the container's init %d (not the shim)", procs, live.Pid())
	}
	// Killed behind the runtime's back, as if while no worker ran.
	if err := syscall.Kill(killed.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Container{exited7, killed} {
		if _, err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}

	r2, err := New(Config{Root: r.root, CgroupParent: r.cgroupParent})
	if err != nil {
		t.Fatal(err)
	}
	adopted, err := r2.Adopt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Container{}
	for _, c := range adopted {
		byID[c.ID()] = c
	}
	if len(byID) != 3 || byID["live"] == nil || byID["exit7"] == nil || byID["killed"] == nil {
		t.Fatalf("adopted %v, want live, exit7 and killed", keys(byID))
	}
	assertNoLeaks(t, r2, never.ID())

	for id, want := range map[string]ExitStatus{"exit7": {ExitCode: 7}, "killed": {ExitCode: 137, Signal: syscall.SIGKILL}} {
		got, ok := byID[id].Exited()
		if !ok || got.ExitCode != want.ExitCode || got.Signal != want.Signal {
			t.Errorf("adopted %s: exit %+v (exited %v), want code %d signal %d", id, got, ok, want.ExitCode, want.Signal)
		}
	}
	l2 := byID["live"]
	if _, ok := l2.Exited(); ok || l2.Pid() != live.Pid() {
		t.Fatalf("adopted live: pid %d, want running pid %d", l2.Pid(), live.Pid())
	}
	if err := l2.Stop(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := l2.Wait(ctx)
	if err != nil || got.ExitCode != 0 || got.Signal != 0 {
		t.Errorf("adopted live stopped with %+v, %v; want a clean exit 0 (SIGTERM handled)", got, err)
	}
	if out := waitForLog(t, r2, "live", "bye"); !strings.HasPrefix(out, "hello from live") {
		t.Errorf("log of live across the restart:\n%s", out)
	}
	for _, c := range adopted {
		if err := c.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		assertNoLeaks(t, r2, c.ID())
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func shimState(t *testing.T, r *Runtime, id string) stateFile {
	t.Helper()
	st, err := r.readState(id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestShimSessionAndStopSignal checks that Stop sends the stop signal of
// the spec (default SIGTERM) and does not fall back to SIGKILL when the
// container exits on it.
func TestShimSessionAndStopSignal(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, helloImage(t), "hello:latest")
	ctx := testCtx(t)

	tests := []struct {
		name    string
		spec    ContainerSpec
		wantBye bool
	}{
		// hello says "bye" and exits 0 on SIGTERM and SIGINT only.
		{"default SIGTERM", ContainerSpec{ID: "sig-term", Image: ref}, true},
		{"spec SIGINT", ContainerSpec{ID: "sig-int", Image: ref, StopSignal: "INT"}, true},
		// A Go program dies on SIGQUIT (exit 2) without running its handler.
		{"spec SIGQUIT", ContainerSpec{ID: "sig-quit", Image: ref, StopSignal: "SIGQUIT"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := create(t, r, tc.spec)
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			waitForLog(t, r, c.ID(), "hello from")
			start := time.Now()
			// A grace period far longer than the test: a stop that works
			// does not wait for SIGKILL.
			sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			if err := c.Stop(sctx, time.Hour); err != nil {
				t.Fatalf("Stop with %s: %v (after %s)", c.StopSignal(), err, time.Since(start))
			}
			st, _ := c.Wait(ctx)
			if st.Signal == syscall.SIGKILL {
				t.Errorf("stopped by SIGKILL, not by %s", c.StopSignal())
			}
			out, _ := readAll(r, c.ID())
			if got := strings.Contains(out, "bye"); got != tc.wantBye {
				t.Errorf("log says bye: %v, want %v (stop signal %s, exit %+v):\n%s", got, tc.wantBye, c.StopSignal(), st, out)
			}
		})
	}
}

func readAll(r *Runtime, id string) (string, error) {
	rc, err := r.OpenLog(id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String(), nil
		}
	}
}

// TestInitReapsZombies runs a program that orphans a short-lived
// grandchild: without --init the grandchild stays a zombie (the program,
// pid 1, never reaps it); with --init the reaper does, the command runs as
// pid 2, and the stop signal still reaches it.
func TestInitReapsZombies(t *testing.T) {
	r := newTestRuntimeWith(t, Config{HelperBinary: buildHelper(t)}) // --init needs a helper without cgo
	img, err := testimage.Build(testCtx(t), "testdata/orphans")
	if err != nil {
		t.Fatal(err)
	}
	ref := testimage.Serve(t, img, "orphans:latest")
	ctx := testCtx(t)

	for _, init := range []bool{false, true} {
		t.Run(map[bool]string{false: "without init", true: "with init"}[init], func(t *testing.T) {
			id := map[bool]string{false: "no-init", true: "init"}[init]
			c := create(t, r, ContainerSpec{ID: id, Image: ref, Init: init})
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			out := waitForLog(t, r, id, "orphaned")
			if isPid1 := strings.Contains(out, "pid 1\n"); isPid1 == init {
				t.Errorf("command runs as pid 1: %v, want %v:\n%s", isPid1, !init, out)
			}
			// The grandchild lives 100ms. Zombies are no longer in the
			// cgroup: look for children of the container's pid 1.
			deadline := time.Now().Add(5 * time.Second)
			var zombies, live int
			for time.Now().Before(deadline) {
				zombies, live = childrenOf(c.Pid())
				if (init && zombies == 0 && live == 1) || (!init && zombies == 1) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if want := map[bool]int{false: 1, true: 0}[init]; zombies != want {
				t.Errorf("%d zombie children of the container's pid 1 (%d live), want %d", zombies, live, want)
			}
			if err := c.Stop(ctx, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if st, _ := c.Wait(ctx); st.ExitCode != 0 {
				t.Errorf("exit %+v, want 0 (SIGTERM forwarded, bye)", st)
			}
			waitForLog(t, r, id, "bye")
		})
	}
}

// childrenOf counts the zombie and the live children of pid.
func childrenOf(pid int) (zombies, live int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		if f[0] == "Z" {
			zombies++
		} else {
			live++
		}
	}
	return zombies, live
}
