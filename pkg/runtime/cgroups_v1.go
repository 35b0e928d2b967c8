package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/minke-io/minke/internal/shim"
)

// cgroupV1 manages per-controller hierarchies: mount/<controller>/parent/id.
type cgroupV1 struct {
	mount  string
	parent string
	// ctrls are the v1Controllers the host mounts, found once: the
	// hierarchies are mounted at boot, and every create, start and delete
	// of a container would otherwise stat each of them again.
	ctrls      []string
	hasDevices bool
	hasPids    bool
}

func newCgroupV1(mount, parent string) *cgroupV1 {
	c := &cgroupV1{mount: mount, parent: parent}
	for _, ctrl := range v1Controllers {
		if _, err := os.Stat(filepath.Join(mount, ctrl)); err == nil {
			c.ctrls = append(c.ctrls, ctrl)
			c.hasDevices = c.hasDevices || ctrl == "devices"
			c.hasPids = c.hasPids || ctrl == "pids"
		}
	}
	return c
}

// v1Controllers are the hierarchies a container joins. Controllers missing
// on the host are skipped; memory is required (detectCgroups checks it).
var v1Controllers = []string{"memory", "cpu", "cpuacct", "pids", "devices"}

func (c *cgroupV1) Version() int { return 1 }

func (c *cgroupV1) parentName() string { return c.parent }

func (c *cgroupV1) dir(ctrl, id string) string {
	return filepath.Join(c.mount, ctrl, c.parent, id)
}

// controllers are the hierarchies a container joins (see ctrls); callers
// must not modify the slice.
func (c *cgroupV1) controllers() []string { return c.ctrls }

func (c *cgroupV1) Create(id string, res resources) error {
	for _, ctrl := range c.controllers() {
		if err := os.MkdirAll(c.dir(ctrl, id), 0o755); err != nil {
			return err
		}
	}
	if err := c.allowDevices(id); err != nil {
		return err
	}
	if res.MemoryLimit > 0 {
		d := c.dir("memory", id)
		if err := writeCgroupFile(d, "memory.limit_in_bytes", strconv.FormatInt(res.MemoryLimit, 10)); err != nil {
			return err
		}
		// With swap accounting, allow as much swap as memory, as docker
		// does when --memory-swap is not given.
		if _, err := os.Stat(filepath.Join(d, "memory.memsw.limit_in_bytes")); err == nil {
			if err := writeCgroupFile(d, "memory.memsw.limit_in_bytes", strconv.FormatInt(2*res.MemoryLimit, 10)); err != nil {
				return err
			}
		}
	}
	if res.CPUShares > 0 {
		if err := writeCgroupFile(c.dir("cpu", id), "cpu.shares", strconv.FormatInt(res.CPUShares, 10)); err != nil {
			return err
		}
	}
	if res.PidsLimit > 0 {
		if !c.hasPids {
			return fmt.Errorf("runtime: a pids limit needs the pids cgroup controller, which this host lacks")
		}
		if err := writeCgroupFile(c.dir("pids", id), "pids.max", strconv.FormatInt(res.PidsLimit, 10)); err != nil {
			return err
		}
	}
	if res.NanoCPUs > 0 {
		d := c.dir("cpu", id)
		if err := writeCgroupFile(d, "cpu.cfs_period_us", strconv.Itoa(cfsPeriod)); err != nil {
			return err
		}
		if err := writeCgroupFile(d, "cpu.cfs_quota_us", strconv.FormatInt(res.cpuQuota(), 10)); err != nil {
			return err
		}
	}
	return nil
}

func (c *cgroupV1) AddProc(id string, pid int) error {
	for _, ctrl := range c.controllers() {
		if err := writeCgroupFile(c.dir(ctrl, id), "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

func (c *cgroupV1) Procs(id string) ([]int, error) {
	return readProcs(c.dir("memory", id))
}

func (c *cgroupV1) Stats(id string) (cgroupStats, error) {
	d := c.dir("memory", id)
	if _, err := os.Stat(d); err != nil {
		return cgroupStats{}, fmt.Errorf("runtime: stats of container %s: %w", id, err)
	}
	st := cgroupStats{
		MemoryUsage: readInt(filepath.Join(d, "memory.usage_in_bytes")),
		OOMKills:    readKeyed(filepath.Join(d, "memory.oom_control"), "oom_kill"),
		CPUUsage:    readInt(filepath.Join(c.dir("cpuacct", id), "cpuacct.usage")),
		Pids:        readInt(filepath.Join(c.dir("pids", id), "pids.current")),
	}
	// An unlimited v1 cgroup reports a huge page-rounded maximum.
	if l := readInt(filepath.Join(d, "memory.limit_in_bytes")); l > 0 && l < 1<<62 {
		st.MemoryLimit = l
	}
	return st, nil
}

func (c *cgroupV1) Delete(id string) error {
	var errs []error
	for _, ctrl := range c.controllers() {
		errs = append(errs, removeCgroupDir(c.dir(ctrl, id)))
	}
	return errors.Join(errs...)
}

func (c *cgroupV1) List() ([]string, error) {
	return listDirs(filepath.Join(c.mount, "memory", c.parent))
}

func (c *cgroupV1) MemoryLimitFile(id string) string {
	return filepath.Join(c.dir("memory", id), "memory.limit_in_bytes")
}

// allowDevices replaces the inherited "a *:* rwm" of the container's
// devices cgroup with defaultDeviceRules. The kernel takes one rule per
// write. Without a devices hierarchy the container relies on the nodev
// mounts alone (see mountOverlay).
func (c *cgroupV1) allowDevices(id string) error {
	if !c.hasDevices {
		return nil
	}
	d := c.dir("devices", id)
	if err := writeCgroupFile(d, "devices.deny", "a"); err != nil {
		return err
	}
	return writeCgroupLines(d, "devices.allow", defaultDeviceRules)
}

func (c *cgroupV1) placement(id string) shim.Cgroup {
	p := shim.Cgroup{Version: 1, Mount: c.mount, Controllers: slices.Clone(c.controllers())}
	for _, ctrl := range p.Controllers {
		p.Dirs = append(p.Dirs, c.dir(ctrl, id))
	}
	return p
}
