package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestCgroupV2FakeTree drives the v2 manager against a directory that
// stands in for a unified cgroupfs mount.
func TestCgroupV2FakeTree(t *testing.T) {
	mount := t.TempDir()
	if err := os.WriteFile(filepath.Join(mount, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cg, err := detectCgroups(mount, "minke")
	if err != nil {
		t.Fatal(err)
	}
	if cg.Version() != 2 {
		t.Fatalf("version %d, want 2", cg.Version())
	}
	v2 := cg.(*cgroupV2)
	if v2.devices != nil {
		t.Fatal("a plain directory got the BPF device filter")
	}
	if err := cg.Create("c0", resources{}); err == nil {
		t.Fatal("Create without a device filter succeeded; want an error rather than unfiltered devices")
	}
	if err := cg.Delete("c0"); err != nil {
		t.Fatal(err)
	}
	var filtered []string
	v2.devices = func(dir string) error { filtered = append(filtered, dir); return nil }
	dir := filepath.Join(mount, "minke", "c1")
	// The kernel creates the interface files with the cgroup; a fake tree
	// has memory.swap.max only if the test makes it.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("max\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cg.Create("c1", resources{MemoryLimit: 64 << 20, NanoCPUs: 5e8, PidsLimit: 100, CPUShares: 512}); err != nil {
		t.Fatal(err)
	}
	if len(filtered) != 1 || filtered[0] != dir {
		t.Errorf("device filter attached to %v, want [%s]", filtered, dir)
	}
	for file, want := range map[string]string{
		filepath.Join(mount, "cgroup.subtree_control"):          "+memory +cpu +pids",
		filepath.Join(mount, "minke", "cgroup.subtree_control"): "+memory +cpu +pids",
		filepath.Join(dir, "memory.max"):                        "67108864",
		filepath.Join(dir, "memory.swap.max"):                   "67108864",
		filepath.Join(dir, "cpu.max"):                           "50000 100000",
		filepath.Join(dir, "cpu.weight"):                        "20",
		filepath.Join(dir, "pids.max"):                          "100",
	} {
		if got := readFile(t, file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if cg.MemoryLimitFile("c1") != filepath.Join(dir, "memory.max") {
		t.Errorf("MemoryLimitFile = %s", cg.MemoryLimitFile("c1"))
	}
	if err := cg.AddProc("c1", 4242); err != nil {
		t.Fatal(err)
	}
	if procs, err := cg.Procs("c1"); err != nil || len(procs) != 1 || procs[0] != 4242 {
		t.Fatalf("Procs = %v, %v", procs, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cpu.stat"), []byte("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "memory.current"), []byte("4096\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "pids.current"), []byte("3\n"), 0o644)
	st, err := cg.Stats("c1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (cgroupStats{MemoryUsage: 4096, MemoryLimit: 64 << 20, OOMKills: 1, CPUUsage: 1500000, Pids: 3}); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if ids, err := cg.List(); err != nil || len(ids) != 1 || ids[0] != "c1" {
		t.Fatalf("List = %v, %v", ids, err)
	}
	// The kernel drops the interface files on rmdir; a plain directory
	// needs them gone first.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	if err := cg.Delete("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cgroup dir still there: %v", err)
	}
	if err := cg.Delete("c1"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestCgroupV1FakeTree(t *testing.T) {
	mount := t.TempDir()
	for _, c := range []string{"memory", "cpu", "pids", "devices", "unified"} {
		if err := os.Mkdir(filepath.Join(mount, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A hybrid host's unified tree must not make it look like v2.
	os.WriteFile(filepath.Join(mount, "unified", "cgroup.controllers"), nil, 0o644)
	cg, err := detectCgroups(mount, "minke")
	if err != nil || cg.Version() != 1 {
		t.Fatalf("detect = %v, %v; want v1", cg, err)
	}
	if err := cg.Create("c1", resources{MemoryLimit: 64 << 20, NanoCPUs: 5e8, PidsLimit: 50, CPUShares: 512}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"pids/minke/c1/pids.max":                "50",
		"cpu/minke/c1/cpu.shares":               "512",
		"memory/minke/c1/memory.limit_in_bytes": "67108864",
	} {
		if got := readFile(t, filepath.Join(mount, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if got := readFile(t, filepath.Join(mount, "memory/minke/c1/memory.limit_in_bytes")); got != "67108864" {
		t.Errorf("memory.limit_in_bytes = %q", got)
	}
	if got := readFile(t, filepath.Join(mount, "cpu/minke/c1/cpu.cfs_quota_us")); got != "50000" {
		t.Errorf("cpu.cfs_quota_us = %q", got)
	}
	if got := readFile(t, filepath.Join(mount, "cpu/minke/c1/cpu.cfs_period_us")); got != "100000" {
		t.Errorf("cpu.cfs_period_us = %q", got)
	}
	// A plain file keeps only the last of the one-rule-per-write writes;
	// TestContainerIsolation checks the whole list on a real hierarchy.
	if got := readFile(t, filepath.Join(mount, "devices/minke/c1/devices.deny")); got != "a" {
		t.Errorf("devices.deny = %q, want a", got)
	}
	// One rule per write, through one open file: in the fake tree's
	// regular file they follow each other, in the order given.
	if got, want := readFile(t, filepath.Join(mount, "devices/minke/c1/devices.allow")), strings.Join(defaultDeviceRules, ""); got != want {
		t.Errorf("devices.allow = %q, want %q", got, want)
	}
}

func TestDetectCgroupsNone(t *testing.T) {
	if _, err := detectCgroups(t.TempDir(), "minke"); err == nil {
		t.Fatal("want ErrNoCgroups")
	}
}

func TestCPUWeight(t *testing.T) {
	for _, tc := range []struct{ shares, weight int64 }{
		{2, 1}, {1024, 39}, {262144, 10000}, {512, 20},
	} {
		if got := cpuWeight(tc.shares); got != tc.weight {
			t.Errorf("cpuWeight(%d) = %d, want %d", tc.shares, got, tc.weight)
		}
	}
}
