package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/minke-io/minke/internal/shim"
)

// cgroupV2 manages a unified hierarchy: mount/parent/id.
type cgroupV2 struct {
	mount  string
	parent string
	// devices restricts device access in the cgroup at dir to
	// defaultDeviceRules; detectCgroups sets it to attach a BPF program on
	// a real cgroup2 mount, tests of a fake tree to a recorder.
	devices func(dir string) error
}

// v2Controllers are enabled for the parent's children when the root offers
// them.
var v2Controllers = []string{"memory", "cpu", "pids"}

func (c *cgroupV2) Version() int { return 2 }

func (c *cgroupV2) parentName() string { return c.parent }

func (c *cgroupV2) dir(id string) string {
	return filepath.Join(c.mount, c.parent, id)
}

// enableControllers delegates the wanted controllers from the root down to
// the parent so that container cgroups get the interface files. Only
// controllers listed in the root's cgroup.controllers are requested.
func (c *cgroupV2) enableControllers() error {
	b, err := os.ReadFile(filepath.Join(c.mount, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("runtime: reading cgroup.controllers: %w", err)
	}
	avail := strings.Fields(string(b))
	var want []string
	for _, w := range v2Controllers {
		for _, a := range avail {
			if a == w {
				want = append(want, "+"+w)
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	value := strings.Join(want, " ")
	dir := c.mount
	for _, part := range strings.Split(filepath.Clean(c.parent), string(filepath.Separator)) {
		if err := writeCgroupFile(dir, "cgroup.subtree_control", value); err != nil {
			return err
		}
		dir = filepath.Join(dir, part)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return writeCgroupFile(dir, "cgroup.subtree_control", value)
}

func (c *cgroupV2) Create(id string, res resources) error {
	if err := os.MkdirAll(filepath.Join(c.mount, c.parent), 0o755); err != nil {
		return err
	}
	if err := c.enableControllers(); err != nil {
		return err
	}
	d := c.dir(id)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	if res.MemoryLimit > 0 {
		if err := writeCgroupFile(d, "memory.max", strconv.FormatInt(res.MemoryLimit, 10)); err != nil {
			return err
		}
	}
	if res.MemoryLimit > 0 {
		// As much swap as memory, as docker does without --memory-swap.
		if _, err := os.Stat(filepath.Join(d, "memory.swap.max")); err == nil {
			if err := writeCgroupFile(d, "memory.swap.max", strconv.FormatInt(res.MemoryLimit, 10)); err != nil {
				return err
			}
		}
	}
	if res.NanoCPUs > 0 {
		v := fmt.Sprintf("%d %d", res.cpuQuota(), cfsPeriod)
		if err := writeCgroupFile(d, "cpu.max", v); err != nil {
			return err
		}
	}
	if res.CPUShares > 0 {
		if err := writeCgroupFile(d, "cpu.weight", strconv.FormatInt(cpuWeight(res.CPUShares), 10)); err != nil {
			return err
		}
	}
	if res.PidsLimit > 0 {
		if err := writeCgroupFile(d, "pids.max", strconv.FormatInt(res.PidsLimit, 10)); err != nil {
			return err
		}
	}
	if c.devices == nil {
		return fmt.Errorf("runtime: cgroup v2 at %s: no device filter", c.mount)
	}
	if err := c.devices(d); err != nil {
		return fmt.Errorf("runtime: restricting devices of cgroup %s: %w", d, err)
	}
	return nil
}

func (c *cgroupV2) AddProc(id string, pid int) error {
	return writeCgroupFile(c.dir(id), "cgroup.procs", strconv.Itoa(pid))
}

func (c *cgroupV2) Procs(id string) ([]int, error) { return readProcs(c.dir(id)) }

func (c *cgroupV2) Stats(id string) (cgroupStats, error) {
	d := c.dir(id)
	if _, err := os.Stat(d); err != nil {
		return cgroupStats{}, fmt.Errorf("runtime: stats of container %s: %w", id, err)
	}
	return cgroupStats{
		MemoryUsage: readInt(filepath.Join(d, "memory.current")),
		MemoryLimit: readInt(filepath.Join(d, "memory.max")), // "max" reads as 0
		OOMKills:    readKeyed(filepath.Join(d, "memory.events"), "oom_kill"),
		CPUUsage:    readKeyed(filepath.Join(d, "cpu.stat"), "usage_usec") * 1000,
		Pids:        readInt(filepath.Join(d, "pids.current")),
	}, nil
}

func (c *cgroupV2) Delete(id string) error { return removeCgroupDir(c.dir(id)) }

func (c *cgroupV2) List() ([]string, error) {
	return listDirs(filepath.Join(c.mount, c.parent))
}

func (c *cgroupV2) MemoryLimitFile(id string) string {
	return filepath.Join(c.dir(id), "memory.max")
}

func (c *cgroupV2) placement(id string) shim.Cgroup {
	return shim.Cgroup{Version: 2, Dirs: []string{c.dir(id)}}
}
