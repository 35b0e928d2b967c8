package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minke-io/minke/internal/shim"
)

// cgroupManager creates and removes one cgroup per container under a parent
// cgroup. It is keyed by container id and keeps no state, so that Sweep in a
// new worker process can find and delete cgroups an old one created.
//
// Devices: on v1 the container's devices cgroup allows only
// defaultDeviceRules. On v2 the same rules are compiled into a
// BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup,
// with the filter compiler of github.com/opencontainers/cgroups/devices
// (runc's, which emulates v1 semantics). Beyond the cgroup, layers may not
// contain device nodes (applyLayer), and the rootfs and /dev are mounted
// nodev.
//
// Why our own layer rather than all of github.com/opencontainers/cgroups
// or containerd/cgroups/v3: their managers discover hierarchies from
// /proc/self/mountinfo and cannot be pointed at a fake tree, and bring
// systemd/dbus drivers the runtime does not use. What the runtime needs is a
// handful of file writes (limits, cgroup.procs) and reads (usage, OOM
// counters), written directly here and tested against a fake tree for both
// versions; only the v2 device filter, which is a BPF compiler, is taken
// from the library.
type cgroupManager interface {
	// Version is 1 or 2.
	Version() int
	// Create makes the container's cgroup and applies the limits.
	Create(id string, res resources) error
	// AddProc moves pid into the container's cgroup.
	AddProc(id string, pid int) error
	// Procs lists the pids in the container's cgroup.
	Procs(id string) ([]int, error)
	// Stats reads the counters the runtime reports.
	Stats(id string) (cgroupStats, error)
	// Delete removes the cgroup; it must be empty. Deleting a missing
	// cgroup is not an error.
	Delete(id string) error
	// List returns the ids of all cgroups under the parent.
	List() ([]string, error)
	// MemoryLimitFile is the path of the file holding the memory limit
	// (memory.limit_in_bytes or memory.max), for diagnostics and tests.
	MemoryLimitFile(id string) string
	// placement is where the shim starts the container's init
	// (internal/shim StartInCgroup): born in the cgroup, never migrated.
	placement(id string) shim.Cgroup
}

var (
	_ cgroupManager = (*cgroupV1)(nil)
	_ cgroupManager = (*cgroupV2)(nil)
)

// resources are the limits applied to a container's cgroup.
type resources struct {
	MemoryLimit int64 // bytes, 0 = unlimited
	NanoCPUs    int64 // 1e9 = one CPU, 0 = unlimited
	PidsLimit   int64 // processes and threads, <= 0 = unlimited
	CPUShares   int64 // relative weight (v1 shares), 0 = kernel default
}

func resourcesOf(s *ContainerSpec) resources {
	return resources{MemoryLimit: s.MemoryLimit, NanoCPUs: s.NanoCPUs, PidsLimit: s.PidsLimit, CPUShares: s.CPUShares}
}

// cpuWeight maps v1 cpu.shares [2, 262144] onto v2 cpu.weight [1, 10000]
// with runc's formula, so 1024 shares become weight 39 and the default
// weight of 100 stays the unset value.
func cpuWeight(shares int64) int64 {
	return 1 + ((shares-2)*9999)/262142
}

// defaultDeviceRules are the devices a container may use, in v1
// devices.allow syntax: docker's default allowlist. Creating any device node
// is allowed ("m"), using one is not, except the harmless character devices
// every program expects and terminals. /dev/net/tun (c 10:200) is left out,
// as runc does since 1.2: a default container has no CAP_NET_ADMIN to use it.
var defaultDeviceRules = []string{
	"c *:* m",
	"b *:* m",
	"c 1:3 rwm",   // /dev/null
	"c 1:5 rwm",   // /dev/zero
	"c 1:7 rwm",   // /dev/full
	"c 1:8 rwm",   // /dev/random
	"c 1:9 rwm",   // /dev/urandom
	"c 5:0 rwm",   // /dev/tty
	"c 5:1 rwm",   // /dev/console
	"c 5:2 rwm",   // /dev/ptmx
	"c 136:* rwm", // /dev/pts/*
}

// cfsPeriod is the CFS period used to express NanoCPUs as a quota, in µs.
const cfsPeriod = 100000

// cpuQuota converts NanoCPUs to a CFS quota in µs per cfsPeriod.
func (r resources) cpuQuota() int64 {
	return r.NanoCPUs * cfsPeriod / 1e9
}

// cgroupStats are the cgroup counters the runtime reports.
type cgroupStats struct {
	MemoryUsage int64 // bytes
	MemoryLimit int64 // bytes; 0 when unlimited
	OOMKills    int64 // processes killed by the OOM killer in this cgroup
	CPUUsage    int64 // total CPU time consumed, nanoseconds
	Pids        int64 // processes and threads now in the cgroup
}

// Stats is a container's resource usage, read from its cgroup.
type Stats struct {
	// CPUUsage is the CPU time the container has consumed; the CPU rate
	// is the difference of two readings over the time between them.
	CPUUsage time.Duration
	// MemoryUsage is the memory charged to the container, page cache
	// included, in bytes; MemoryLimit is its limit, 0 when none.
	MemoryUsage int64
	MemoryLimit int64
	// Pids counts its processes and threads.
	Pids int64
	// OOMKills counts processes the kernel's OOM killer killed in it.
	OOMKills int64
}

// Stats reads the resource usage of container id from its cgroup. It works
// for any container of this runtime's root that still has its cgroup,
// including exited ones not yet removed.
func (r *Runtime) Stats(id string) (Stats, error) {
	if err := validID(id); err != nil {
		return Stats{}, err
	}
	st, err := r.cgroups.Stats(id)
	if err != nil {
		return Stats{}, err
	}
	return Stats{
		CPUUsage:    time.Duration(st.CPUUsage),
		MemoryUsage: st.MemoryUsage,
		MemoryLimit: st.MemoryLimit,
		Pids:        st.Pids,
		OOMKills:    st.OOMKills,
	}, nil
}

// detectCgroups picks the cgroup version mounted at mount: v2 when the
// mount itself is a unified hierarchy (cgroup.controllers at its top),
// otherwise v1 with per-controller subdirectories. A hybrid host (v1
// controllers plus an empty unified tree at mount/unified) is treated as v1.
func detectCgroups(mount, parent string) (cgroupManager, error) {
	if _, err := os.Stat(filepath.Join(mount, "cgroup.controllers")); err == nil {
		return &cgroupV2{mount: mount, parent: parent, devices: v2DeviceFilter(mount)}, nil
	}
	if _, err := os.Stat(filepath.Join(mount, "memory")); err == nil {
		return newCgroupV1(mount, parent), nil
	}
	return nil, fmt.Errorf("%w at %s", ErrNoCgroups, mount)
}

// writeCgroupFile writes value to the cgroup file dir/file, with the raw
// calls (open, write, close): an os.File would also register the file,
// which cgroupfs makes pollable, with the Go poller and take it out again.
func writeCgroupFile(dir, file, value string) error {
	return writeCgroupLines(dir, file, []string{value})
}

// writeCgroupLines writes each value to the cgroup file dir/file in a
// write of its own, through one open file: files such as devices.allow
// take one entry per write.
func writeCgroupLines(dir, file string, values []string) error {
	fd, err := unix.Open(filepath.Join(dir, file), unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("runtime: cgroup write %s: %w", file, err)
	}
	defer unix.Close(fd)
	for _, v := range values {
		if _, err := unix.Write(fd, []byte(v)); err != nil {
			return fmt.Errorf("runtime: cgroup write %s=%q: %w", file, v, err)
		}
	}
	return nil
}

func readProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: reading cgroup procs: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// readKeyed returns the value of key in a "key value" per line file such as
// memory.events or memory.oom_control; missing files or keys give 0.
func readKeyed(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v
}

func removeCgroupDir(dir string) error {
	err := os.Remove(dir)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("runtime: removing cgroup %s: %w", dir, err)
}

func listDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: listing cgroups: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}
