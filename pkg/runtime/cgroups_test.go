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
	if err := cg.Create("c1", resources{MemoryLimit: 64 << 20, NanoCPUs: 5e8}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mount, "minke", "c1")
	for file, want := range map[string]string{
		filepath.Join(mount, "cgroup.subtree_control"):          "+memory +cpu +pids",
		filepath.Join(mount, "minke", "cgroup.subtree_control"): "+memory +cpu +pids",
		filepath.Join(dir, "memory.max"):                        "67108864",
		filepath.Join(dir, "cpu.max"):                           "50000 100000",
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
	if st, _ := cg.Stats("c1"); st.OOMKills != 1 {
		t.Errorf("OOMKills = %d, want 1", st.OOMKills)
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
	if err := cg.Create("c1", resources{MemoryLimit: 64 << 20, NanoCPUs: 5e8}); err != nil {
		t.Fatal(err)
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
	if got, want := readFile(t, filepath.Join(mount, "devices/minke/c1/devices.allow")), defaultDeviceRules[len(defaultDeviceRules)-1]; got != want {
		t.Errorf("devices.allow = %q, want %q", got, want)
	}
}

func TestDetectCgroupsNone(t *testing.T) {
	if _, err := detectCgroups(t.TempDir(), "minke"); err == nil {
		t.Fatal("want ErrNoCgroups")
	}
}
