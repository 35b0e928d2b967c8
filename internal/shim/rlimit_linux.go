package shim

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// applyRlimits sets the init's rlimits, which execve passes on to the
// container's command. It runs while the init still has CAP_SYS_RESOURCE,
// so hard limits may be raised above the worker's.
func applyRlimits(limits []Rlimit) error {
	for _, l := range limits {
		rl := unix.Rlimit{Cur: l.Soft, Max: l.Hard}
		err := unix.Prlimit(0, l.Resource, &rl, nil)
		if errors.Is(err, unix.EPERM) && l.Default {
			var cur unix.Rlimit
			if unix.Prlimit(0, l.Resource, nil, &cur) == nil && cur.Max < l.Hard {
				rl = unix.Rlimit{Cur: min(l.Soft, cur.Max), Max: cur.Max}
				err = unix.Prlimit(0, l.Resource, &rl, nil)
			}
		}
		if err != nil {
			return fmt.Errorf("setting rlimit %s to %d:%d: %w", rlimitName(l.Resource), l.Soft, l.Hard, err)
		}
	}
	return nil
}

func rlimitName(res int) string {
	for n, r := range RlimitNames {
		if r == res {
			return n
		}
	}
	return fmt.Sprintf("%d", res)
}
