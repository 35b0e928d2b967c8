package runtime

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/minke-io/minke/internal/shim"
)

// capNames are the Linux capabilities by number, without the CAP_ prefix.
var capNames = shim.CapNames

// defaultCaps is docker's default capability set (moby oci/caps), 0xa80425fb
// as shown by CapEff in /proc/self/status of a `docker run` container.
var defaultCaps = capMaskOf(
	"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
	"SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
	"AUDIT_WRITE",
)

// capMask is a set of capabilities, bit n for capability n.
type capMask uint64

func capMaskOf(names ...string) capMask {
	var m capMask
	for _, n := range names {
		c, ok := capByName(n)
		if !ok {
			panic("runtime: unknown capability " + n)
		}
		m |= 1 << c
	}
	return m
}

// capByName accepts "NET_ADMIN", "CAP_NET_ADMIN" and any letter case.
func capByName(name string) (uint, bool) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "CAP_")
	for i, c := range capNames {
		if c == n {
			return uint(i), true
		}
	}
	return 0, false
}

// names lists the capabilities in m, by number, with the CAP_ prefix.
func (m capMask) names() []string {
	var out []string
	for v := uint64(m); v != 0; v &= v - 1 {
		i := bits.TrailingZeros64(v)
		if i < len(capNames) {
			out = append(out, "CAP_"+capNames[i])
		} else {
			out = append(out, fmt.Sprintf("CAP_%d", i))
		}
	}
	return out
}

// resolveCaps applies a spec's CapAdd and CapDrop to the default set, with
// docker's rules: "ALL" in CapDrop starts from the empty set, drops are
// applied before adds (so a capability in both lists is kept), and names are
// matched with or without the CAP_ prefix, in any case. "ALL" is refused in
// CapAdd: a container with every capability is a host root shell, and
// minke has no privileged mode.
func resolveCaps(add, drop []string) (capMask, error) {
	caps := defaultCaps
	var dropMask, addMask capMask
	for _, n := range drop {
		if strings.EqualFold(strings.TrimSpace(n), "ALL") {
			caps = 0
			continue
		}
		c, ok := capByName(n)
		if !ok {
			return 0, fmt.Errorf("%w: CapDrop entry %q is not a capability; want ALL or one of %s (CAP_ prefix optional)",
				ErrInvalidSpec, n, strings.Join(capNames[:], ", "))
		}
		dropMask |= 1 << c
	}
	for _, n := range add {
		if strings.EqualFold(strings.TrimSpace(n), "ALL") {
			return 0, fmt.Errorf("%w: CapAdd entry %q: adding every capability is not supported; name the capabilities needed", ErrInvalidSpec, n)
		}
		c, ok := capByName(n)
		if !ok {
			return 0, fmt.Errorf("%w: CapAdd entry %q is not a capability; want one of %s (CAP_ prefix optional)",
				ErrInvalidSpec, n, strings.Join(capNames[:], ", "))
		}
		addMask |= 1 << c
	}
	return caps&^dropMask | addMask, nil
}

// ValidateCapabilities checks cap-add and cap-drop lists with the rules of
// ContainerSpec.CapAdd/CapDrop, so that the API can refuse a bad name
// before any worker sees it.
func ValidateCapabilities(add, drop []string) error {
	_, err := resolveCaps(add, drop)
	return err
}
