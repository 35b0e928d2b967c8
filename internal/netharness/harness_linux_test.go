package netharness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nettool is the helper program from testdata/nettool, built by TestMain.
var nettool string

const port = "7000"

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run()) // every test skips; no helper needed
	}
	dir, err := os.MkdirTemp("", "netharness-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nettool = filepath.Join(dir, "nettool")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goBin, "build", "-o", nettool, "./testdata/nettool")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building nettool: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netharness tests need root (network namespaces, veths, bridges)")
	}
}

// newHarness is New plus LeakCheck, as every test here wants both.
func newHarness(t *testing.T, n int) *Harness {
	t.Helper()
	h := New(t, n)
	LeakCheck(t, h)
	return h
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// startServer runs the echo server on host i and waits until it listens.
func startServer(t *testing.T, h *Harness, i int) *Proc {
	t.Helper()
	p := h.Host(i).Start("echo", nettool, "serve", "0.0.0.0:"+port)
	waitFor(t, 10*time.Second, "echo server on host "+fmt.Sprint(i), func() bool {
		return strings.Contains(p.Log(), "listening")
	})
	return p
}

// reach reports whether host from can exchange a line with host to's echo
// server; a connection that cannot be made fails within about a second.
func reach(h *Harness, from, to int) error {
	out, err := h.Host(from).Exec(5*time.Second, nettool, "dial", h.Host(to).IP()+":"+port, "1s")
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
	}
	return nil
}

// reachWithin retries reach until it succeeds or timeout passes. After a
// Heal or a change of partition, a neighbour entry still INCOMPLETE from the
// cut-off period only re-probes after its retransmit time (1s), as on a real
// network, so the first attempt may time out.
func reachWithin(h *Harness, from, to int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := reach(h, from, to)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// checkMatrix checks every ordered pair of hosts concurrently: want(a, b)
// says whether a should reach b. A cut pair must fail at the first attempt;
// a connected pair must succeed within 10s.
func checkMatrix(t *testing.T, h *Harness, want func(a, b int) bool) {
	t.Helper()
	type pair struct{ a, b int }
	var mu sync.Mutex
	got := map[pair]error{}
	var wg sync.WaitGroup
	for a := range h.Len() {
		for b := range h.Len() {
			if a == b {
				continue
			}
			wg.Go(func() {
				var err error
				if want(a, b) {
					err = reachWithin(h, a, b, 10*time.Second)
				} else {
					err = reach(h, a, b)
				}
				mu.Lock()
				got[pair{a, b}] = err
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	for p, err := range got {
		if want(p.a, p.b) && err != nil {
			t.Errorf("host %d -> host %d: want reachable, got %v", p.a, p.b, err)
		}
		if !want(p.a, p.b) && err == nil {
			t.Errorf("host %d -> host %d: want unreachable, but the echo came back", p.a, p.b)
		}
	}
}

func TestHostsReachEachOtherButNotTheRoot(t *testing.T) {
	requireRoot(t)
	h := newHarness(t, 2)
	var servers []*Proc
	for i := range 2 {
		hst := h.Host(i)
		if want := h.Subnet().Addr().As4(); hst.IP() != fmt.Sprintf("%d.%d.%d.%d", want[0], want[1], want[2], i+1) {
			t.Errorf("host %d IP = %s, want .%d in %s", i, hst.IP(), i+1, h.Subnet())
		}
		out, err := hst.Exec(5*time.Second, "ip", "-o", "addr", "show", "dev", "eth0")
		if err != nil || !strings.Contains(out, hst.IP()+"/24") {
			t.Errorf("host %d eth0: %q, %v", i, out, err)
		}
		out, err = hst.Exec(5*time.Second, "ip", "-o", "link", "show", "dev", "lo")
		if err != nil || !strings.Contains(out, "UP") {
			t.Errorf("host %d lo not up: %q, %v", i, out, err)
		}
		servers = append(servers, startServer(t, h, i))
	}
	server0 := servers[0]
	checkMatrix(t, h, func(a, b int) bool { return true })

	// Root -> host: no route over the bridge (the bridge has no address).
	// A dial may still "connect" to whatever answers behind the machine's
	// default route, so what counts is that no echo comes back and the
	// server never sees a peer from outside the subnet.
	out, err := ipCmd("route", "get", h.Host(0).IP())
	if err != nil || strings.Contains(out, h.bridge) {
		t.Errorf("root namespace routes to host 0 over the bridge: %q, %v", out, err)
	}
	if c, err := net.DialTimeout("tcp", h.Host(0).IP()+":"+port, time.Second); err == nil {
		_ = c.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprintln(c, "ping")
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err == nil && string(buf) == "ping\n" {
			t.Errorf("root namespace reached host 0's echo server")
		}
		c.Close()
	}
	defer func() {
		for _, line := range strings.Split(server0.Log(), "\n") {
			from, ok := strings.CutPrefix(line, "accepted from ")
			if !ok {
				continue
			}
			ap, err := netip.ParseAddrPort(from)
			if err != nil || !h.Subnet().Contains(ap.Addr().Unmap()) {
				t.Errorf("host 0 accepted a connection from outside the hosts: %q", line)
			}
		}
	}()

	// Host -> root: listen on every root address; no host may get through.
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, lport, _ := net.SplitHostPort(l.Addr().String())
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil || ipn.IP.IsLoopback() {
			continue
		}
		if out, err := h.Host(1).Exec(5*time.Second, nettool, "dial", net.JoinHostPort(ipn.IP.String(), lport), "1s"); err == nil {
			t.Errorf("host 1 reached the root namespace at %s: %s", ipn.IP, out)
		}
	}
}

func TestIsolateAndHeal(t *testing.T) {
	requireRoot(t)
	h := newHarness(t, 3)
	for i := range 3 {
		startServer(t, h, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := h.Host(1).Dial(ctx, "tcp", h.Host(0).IP()+":"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func(msg string, timeout time.Duration) error {
		if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(conn, msg); err != nil {
			return err
		}
		buf := make([]byte, len(msg)+1)
		if _, err := io.ReadFull(conn, buf); err != nil {
			return err
		}
		if string(buf) != msg+"\n" {
			return fmt.Errorf("echo %q, want %q", buf, msg)
		}
		return nil
	}
	if err := echo("before", 5*time.Second); err != nil {
		t.Fatalf("established connection before Isolate: %v", err)
	}

	h.Isolate(0)
	start := time.Now()
	if err := reach(h, 1, 0); err == nil {
		t.Errorf("host 1 reached isolated host 0")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failed connection attempt took %v", d)
	}
	checkMatrix(t, h, func(a, b int) bool { return a != 0 && b != 0 })
	var ne net.Error
	if err := echo("during", time.Second); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("established connection during Isolate: got %v, want a timeout", err)
	}

	h.Heal()
	checkMatrix(t, h, func(a, b int) bool { return true })
	// The line sent during the partition is retransmitted, then echoed.
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("during\n"))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "during\n" {
		t.Fatalf("established connection after Heal: %q, %v", buf, err)
	}
	if err := echo("after", 5*time.Second); err != nil {
		t.Errorf("established connection after Heal: %v", err)
	}
}

func TestPartition(t *testing.T) {
	requireRoot(t)
	h := newHarness(t, 4)
	for i := range 4 {
		startServer(t, h, i)
	}
	for _, tc := range []struct {
		name   string
		groups [][]int
		group  []int // group[i] = which side host i ends up on
	}{
		{"0|123", [][]int{{0}, {1, 2, 3}}, []int{0, 1, 1, 1}},
		{"02|13", [][]int{{0, 2}, {1, 3}}, []int{0, 1, 0, 1}},
		{"3|0|12", [][]int{{3}, {0}, {1, 2}}, []int{1, 2, 2, 0}},
		{"unlisted are alone", [][]int{{1, 2}}, []int{-1, 0, 0, -2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.Partition(tc.groups...)
			checkMatrix(t, h, func(a, b int) bool { return tc.group[a] == tc.group[b] })
		})
	}
	h.Heal()
	checkMatrix(t, h, func(a, b int) bool { return true })
	if _, links, err := existing(h); err != nil || len(links) != 1+h.Len() {
		t.Errorf("after Heal want only the bridge and %d veths, got %v, %v", h.Len(), links, err)
	}
}

func TestProcLifecycle(t *testing.T) {
	requireRoot(t)
	h := newHarness(t, 1)
	p := startServer(t, h, 0)
	if !p.Running() {
		t.Fatal("server not running")
	}
	if err := p.Wait(50 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("Wait on a running process = %v, want ErrTimeout", err)
	}
	if pgid, err := syscall.Getpgid(p.Pid()); err != nil || pgid != p.Pid() {
		t.Errorf("pgid = %d, %v; want own group %d", pgid, err, p.Pid())
	}

	t.Run("pause and resume", func(t *testing.T) {
		p.Pause()
		waitFor(t, 5*time.Second, "state T", func() bool { return procState(p.Pid()) == "T" })
		if err := reach(h, 0, 0); err == nil {
			t.Errorf("paused server answered")
		}
		p.Resume()
		waitFor(t, 5*time.Second, "state not T", func() bool { return procState(p.Pid()) != "T" })
		if err := reach(h, 0, 0); err != nil {
			t.Errorf("resumed server: %v", err)
		}
	})

	t.Run("kill and restart", func(t *testing.T) {
		old := p.Pid()
		p.Kill()
		if p.Running() {
			t.Fatal("running after Kill")
		}
		if sig := exitSignal(p.Wait(0)); sig != syscall.SIGKILL {
			t.Errorf("exit signal %v, want SIGKILL", sig)
		}
		p.Restart()
		if !p.Running() || p.Pid() == old {
			t.Fatalf("after Restart: running=%v pid=%d (old %d)", p.Running(), p.Pid(), old)
		}
		waitFor(t, 10*time.Second, "second run listening", func() bool {
			return strings.Count(p.Log(), "listening") == 2
		})
		if err := reach(h, 0, 0); err != nil {
			t.Errorf("restarted server: %v", err)
		}
	})

	t.Run("restart while running stops gracefully", func(t *testing.T) {
		old := p.Pid()
		p.Restart()
		if p.Pid() == old || !strings.Contains(p.Log(), "terminating") {
			t.Errorf("pid %d (old %d), log:\n%s", p.Pid(), old, p.Log())
		}
		// Until it listens it may not have its SIGTERM handler yet.
		waitFor(t, 10*time.Second, "third run listening", func() bool {
			return strings.Count(p.Log(), "listening") == 3
		})
	})

	t.Run("stop paused process exits cleanly", func(t *testing.T) {
		p.Pause()
		waitFor(t, 5*time.Second, "state T", func() bool { return procState(p.Pid()) == "T" })
		p.Stop(5 * time.Second)
		if err := p.Wait(0); err != nil || p.Running() {
			t.Errorf("Stop: Wait = %v, running = %v", err, p.Running())
		}
	})

	t.Run("stop escalates to SIGKILL", func(t *testing.T) {
		s := h.Host(0).Start("stubborn", nettool, "stubborn")
		waitFor(t, 10*time.Second, "stubborn ready", func() bool { return strings.Contains(s.Log(), "ready") })
		start := time.Now()
		s.Stop(300 * time.Millisecond)
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("Stop returned after %v, before the grace period", d)
		}
		if sig := exitSignal(s.Wait(0)); s.Running() || sig != syscall.SIGKILL {
			t.Errorf("running=%v signal=%v, want stopped by SIGKILL", s.Running(), sig)
		}
	})
}

func exitSignal(err error) syscall.Signal {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0
	}
	return ws.Signal()
}

func TestKillHost(t *testing.T) {
	requireRoot(t)
	h := newHarness(t, 2)
	s0, s1 := startServer(t, h, 0), startServer(t, h, 1)
	sp := h.Host(0).Start("spawn", nettool, "spawn")
	// The child shares the spawner's output: its "ready" may come before
	// the spawner's "child PID" line.
	waitFor(t, 10*time.Second, "escaped child ready", func() bool {
		return strings.Contains(sp.Log(), "ready") && strings.Contains(sp.Log(), "child ")
	})
	var child int
	if _, err := fmt.Sscanf(sp.Log()[strings.Index(sp.Log(), "child "):], "child %d", &child); err != nil {
		t.Fatal(err)
	}
	if pgid, _ := syscall.Getpgid(child); pgid == sp.Pid() {
		t.Fatalf("child %d did not leave the process group", child)
	}

	h.KillHost(0)
	if s0.Running() || sp.Running() {
		t.Errorf("host 0 processes still running: echo=%v spawn=%v", s0.Running(), sp.Running())
	}
	if left := netnsProcs(map[string]int{h.Host(0).nsID: 0}); len(left) != 0 {
		t.Errorf("processes left in host 0: %v", left)
	}
	if !s1.Running() {
		t.Errorf("host 1's server died with host 0")
	}
	s0.Restart()
	waitFor(t, 10*time.Second, "host 0 back", func() bool { return strings.Count(s0.Log(), "listening") == 2 })
	if err := reach(h, 1, 0); err != nil {
		t.Errorf("host 1 -> restarted host 0: %v", err)
	}
}

func TestCleanupLeavesNothing(t *testing.T) {
	requireRoot(t)
	var h *Harness
	t.Run("busy harness", func(t *testing.T) {
		h = New(t, 3)
		for i := range 3 {
			startServer(t, h, i)
		}
		sp := h.Host(1).Start("spawn", nettool, "spawn")
		waitFor(t, 10*time.Second, "escaped child", func() bool { return strings.Contains(sp.Log(), "ready") })
		st := h.Host(2).Start("stubborn", nettool, "stubborn")
		st.Pause()
		h.Partition([]int{0}, []int{1}, []int{2})
		if netns, links, err := existing(h); err != nil || len(netns) != 3 || len(links) != 3+3 {
			t.Fatalf("before cleanup: netns %v, links %v, %v", netns, links, err)
		}
	})
	if h == nil {
		t.Skip("inner test did not get a harness")
	}
	if leaks := h.Leaks(); len(leaks) > 0 {
		t.Errorf("left behind after cleanup: %v", leaks)
	}
}

// fakeTB stands in for a test whose failure must not fail this one.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	fatal    string
	failed   bool
	logs     strings.Builder
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.mu.Lock(); f.cleanups = append(f.cleanups, fn); f.mu.Unlock() }
func (f *fakeTB) Failed() bool      { f.mu.Lock(); defer f.mu.Unlock(); return f.failed }
func (f *fakeTB) Logf(format string, args ...any) {
	f.mu.Lock()
	fmt.Fprintf(&f.logs, format+"\n", args...)
	f.mu.Unlock()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal, f.failed = fmt.Sprintf(format, args...), true
	f.mu.Unlock()
	runtime.Goexit()
}

// run calls fn as a test body would (Fatalf ends it), then the cleanups.
func (f *fakeTB) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestNewFailingHalfWayCleansUp(t *testing.T) {
	requireRoot(t)
	var h *Harness
	testHookHostCreated = func(hh *Harness, i int) error {
		h = hh
		if i == 2 {
			return errors.New("injected failure")
		}
		return nil
	}
	defer func() { testHookHostCreated = nil }()
	f := &fakeTB{TB: t}
	f.run(func() { New(f, 4) })
	if !strings.Contains(f.fatal, "injected failure") {
		t.Fatalf("New did not fail as injected: %q", f.fatal)
	}
	if h == nil {
		t.Fatal("hook never saw the harness")
	}
	if leaks := h.Leaks(); len(leaks) > 0 {
		t.Errorf("left behind: %v", leaks)
	}
}

func TestFailedTestDumpsLogs(t *testing.T) {
	requireRoot(t)
	f := &fakeTB{TB: t}
	var h *Harness
	f.run(func() {
		h = New(f, 1)
		p := h.Host(0).Start("talker", "sh", "-c", "seq 1 70; echo done")
		if err := p.Wait(10 * time.Second); err != nil {
			f.Fatalf("talker: %v", err)
		}
		f.mu.Lock()
		f.failed = true // as if the test had failed
		f.mu.Unlock()
	})
	if f.fatal != "" {
		t.Fatal(f.fatal)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "last 50 lines of talker") || !strings.Contains(logs, "\n22\n") ||
		strings.Contains(logs, "\n21\n") || !strings.Contains(logs, "done") {
		t.Errorf("dump does not hold exactly the last 50 lines:\n%s", logs)
	}
	if leaks := h.Leaks(); len(leaks) > 0 {
		t.Errorf("left behind: %v", leaks)
	}
}

// The kernel gives a freed namespace's inode number to the next namespace
// created; a process in that one, which is not the harness's, is no leak.
func TestLeaksIgnoresReusedNamespaceInode(t *testing.T) {
	requireRoot(t)
	h := New(t, 1)
	old := h.Host(0).nsID
	h.Close()
	if leaks := h.Leaks(); len(leaks) > 0 {
		t.Fatalf("left behind: %v", leaks)
	}

	// Freeing a namespace is asynchronous, and the lowest free number is
	// given first: create and keep fresh namespaces until one gets the old
	// number, a bounded number of times.
	var names []string
	defer func() {
		for _, n := range names {
			_, _ = ipCmd("netns", "del", n)
		}
	}()
	name := ""
	for deadline := time.Now().Add(10 * time.Second); name == "" && len(names) < 100 && time.Now().Before(deadline); {
		n := fmt.Sprintf("mkreuse%s-%d", h.id, len(names))
		if _, err := ipCmd("netns", "add", n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/run/netns", n), &st); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("net:[%d]", st.Ino) == old {
			name = n
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if name == "" {
		t.Skipf("no new namespace got %s within %d tries (the kernel may not have freed it yet)", old, len(names))
	}
	sleeper := exec.Command("nsenter", "--net=/run/netns/"+name, "--", "sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }()
	waitFor(t, 5*time.Second, "sleeper inside the new namespace", func() bool {
		return len(netnsProcs(map[string]int{old: 0})) == 1
	})
	if leaks := h.Leaks(); len(leaks) > 0 {
		t.Errorf("a process in another namespace with the old inode is reported: %v", leaks)
	}
}
