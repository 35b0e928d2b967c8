package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minke-io/minke/internal/testimage"
)

// TestMemoryLimitOOMKilled runs a probe that allocates without bound under
// a 16 MiB limit: the kernel kills it, and the runtime reports OOMKilled
// with exit code 137, as docker does.
//
// The init does its setup inside the container's cgroup, as runc's does,
// so it runs as the workers run it: the helper binary, not this test
// binary, whose -race build needs more than 16 MiB to get to its exec.
func TestMemoryLimitOOMKilled(t *testing.T) {
	r := newTestRuntimeWith(t, Config{HelperBinary: buildHelper(t)})
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	spec := ContainerSpec{ID: "sbx-oom", Image: ref, Args: []string{"oom"}, MemoryLimit: 16 << 20}
	c := create(t, r, spec)
	ctx := testCtx(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.OOMKilled || st.ExitCode != 137 || st.Signal != syscall.SIGKILL {
		t.Fatalf("exit %+v, want OOMKilled with exit code 137 (SIGKILL)", st)
	}
	log := waitForLog(t, r, spec.ID, "allocated=")
	if strings.Contains(log, "survived") {
		t.Fatal("the probe allocated 16 GiB under a 16 MiB limit")
	}
	stats, err := r.Stats(spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stats.OOMKills < 1 || stats.MemoryLimit != 16<<20 {
		t.Errorf("Stats = %+v, want OOMKills >= 1 and MemoryLimit 16MiB", stats)
	}
}

// TestCPUQuota runs four spinning threads under --limit-cpu 0.2 and
// measures, from the cgroup's CPU accounting, that the container got no
// more than its quota over its lifetime (plus one period of slack).
func TestCPUQuota(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	const quota = 0.2
	spec := ContainerSpec{ID: "sbx-cpu", Image: ref, Args: []string{"spin", "1500ms"}, NanoCPUs: int64(quota * 1e9), CPUShares: 512}
	c := create(t, r, spec)
	ctx := testCtx(t)
	start := time.Now()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	if st.ExitCode != 0 {
		t.Fatalf("probe exited %+v", st)
	}
	stats, err := r.Stats(spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	limit := time.Duration(quota*float64(wall)) + 2*cfsPeriod*time.Microsecond
	t.Logf("CPU %v over %v (%.2f CPUs; quota %.1f)", stats.CPUUsage, wall, stats.CPUUsage.Seconds()/wall.Seconds(), quota)
	if stats.CPUUsage <= 0 {
		t.Fatal("no CPU usage accounted: Stats does not read the container's CPU time")
	}
	if stats.CPUUsage > limit {
		t.Errorf("CPU usage %v exceeds the quota: at most %v over %v", stats.CPUUsage, limit, wall)
	}
	if cg, ok := r.cgroups.(*cgroupV1); ok {
		if got := readFile(t, filepath.Join(cg.dir("cpu", spec.ID), "cpu.shares")); got != "512" {
			t.Errorf("cpu.shares = %s, want 512", got)
		}
	}
}

// TestPidsLimit lets a probe fork paused copies of itself until the
// kernel refuses: fork fails with EAGAIN and the cgroup never holds more
// tasks than the limit.
func TestPidsLimit(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	const limit = 32
	spec := ContainerSpec{ID: "sbx-pids", Image: ref, Args: []string{"fork", "200"}, Env: []string{"GOMAXPROCS=1"}, PidsLimit: limit}
	c := create(t, r, spec)
	if err := c.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	log := waitForLog(t, r, spec.ID, "fork_error=")
	facts := map[string]string{}
	for _, line := range strings.Split(log, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			facts[k] = v
		}
	}
	if facts["fork_error"] != "EAGAIN" {
		t.Errorf("fork_error = %q, want EAGAIN; log:\n%s", facts["fork_error"], log)
	}
	t.Logf("started %s paused processes before fork failed with %s", facts["started"], facts["fork_error"])
	if n, _ := strconv.Atoi(facts["started"]); n >= limit {
		t.Errorf("started %d processes under a limit of %d tasks", n, limit)
	}
	stats, err := r.Stats(spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pids < 2 || stats.Pids > limit {
		t.Errorf("Stats.Pids = %d, want between 2 and %d", stats.Pids, limit)
	}
	if err := c.Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	checkRemoved(t, r, spec.ID)
}

// TestV2DeviceFilter attaches the BPF device filter to a real cgroup v2
// directory (the unified hierarchy of a hybrid host, or the v2 root) and
// checks, from a process started in it, that allowed devices open and
// others do not.
func TestV2DeviceFilter(t *testing.T) {
	requireRoot(t)
	mount := ""
	for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if v2DeviceFilter(m) != nil {
			mount = m
			break
		}
	}
	if mount == "" {
		t.Skip("no cgroup2 mount")
	}
	dir := filepath.Join(mount, "minke-test-devices-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	if err := attachDeviceFilter(dir); err != nil {
		t.Fatal(err)
	}
	// A device node outside the allowlist: /dev/mem's numbers (c 1:1),
	// made on a filesystem without nodev so only the filter stops it.
	node := filepath.Join(t.TempDir(), "mem")
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1))); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, tc := range []struct {
		path    string
		allowed bool
	}{{"/dev/null", true}, {"/dev/zero", true}, {node, false}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "exec 3<"+tc.path)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		out, err := cmd.CombinedOutput()
		cancel()
		if tc.allowed && err != nil {
			t.Errorf("opening %s in the cgroup: %v %s", tc.path, err, out)
		}
		if !tc.allowed && (err == nil || !strings.Contains(strings.ToLower(string(out)), "not permitted")) {
			t.Errorf("opening %s in the cgroup: err %v, output %q; want operation not permitted", tc.path, err, out)
		}
	}
}
