package runtime

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
	_ "github.com/opencontainers/cgroups/devices" // sets cgroups.DevicesSetV2
	devconfig "github.com/opencontainers/cgroups/devices/config"
	"golang.org/x/sys/unix"
)

// v2DeviceFilter returns the function that attaches the device filter to a
// cgroup of the unified hierarchy at mount, or nil when mount is not a
// cgroup2 filesystem (a fake tree in tests).
func v2DeviceFilter(mount string) func(string) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(mount, &fs); err != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil
	}
	return attachDeviceFilter
}

// attachDeviceFilter compiles defaultDeviceRules into a
// BPF_PROG_TYPE_CGROUP_DEVICE program and attaches it to the cgroup at dir
// (replacing one attached before), so that the processes in it can open
// only the allowed devices, as the v1 devices controller enforces.
func attachDeviceFilter(dir string) error {
	rules, err := deviceRules(defaultDeviceRules)
	if err != nil {
		return err
	}
	if cgroups.DevicesSetV2 == nil {
		return fmt.Errorf("no cgroup v2 device filter compiler linked in")
	}
	return cgroups.DevicesSetV2(dir, &cgroups.Resources{Devices: rules})
}

// deviceRules parses v1 devices.allow lines ("c 1:3 rwm", "b *:* m") into
// allow rules.
func deviceRules(lines []string) ([]*devconfig.Rule, error) {
	var out []*devconfig.Rule
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 {
			return nil, fmt.Errorf("device rule %q: want TYPE MAJOR:MINOR ACCESS", l)
		}
		maj, min, ok := strings.Cut(f[1], ":")
		if !ok || len(f[0]) != 1 {
			return nil, fmt.Errorf("device rule %q: want TYPE MAJOR:MINOR ACCESS", l)
		}
		num := func(s string) (int64, error) {
			if s == "*" {
				return devconfig.Wildcard, nil
			}
			return strconv.ParseInt(s, 10, 64)
		}
		ma, err := num(maj)
		if err != nil {
			return nil, fmt.Errorf("device rule %q: major %q", l, maj)
		}
		mi, err := num(min)
		if err != nil {
			return nil, fmt.Errorf("device rule %q: minor %q", l, min)
		}
		out = append(out, &devconfig.Rule{
			Type: devconfig.Type(f[0][0]), Major: ma, Minor: mi,
			Permissions: devconfig.Permissions(f[2]), Allow: true,
		})
	}
	return out, nil
}
