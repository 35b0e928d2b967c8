package runtime

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/minke-io/minke/internal/shim"
)

// Ulimit is one resource limit, as docker's --ulimit NAME=SOFT[:HARD].
// -1 means unlimited.
type Ulimit struct {
	Name string // nofile, nproc, core, memlock, stack, ... (see rlimitNames)
	Soft int64
	Hard int64
}

// rlimitNames maps docker's ulimit names to RLIMIT_* numbers.
var rlimitNames = shim.RlimitNames

// defaultUlimits are applied unless the spec names the same limit. It is
// what a container of docker 25 and later gets on a systemd host (the
// daemon no longer raises it to infinity): a soft limit of 1024 for
// select(2)-era programs, and room to raise it.
var defaultUlimits = []Ulimit{{Name: "nofile", Soft: 1024, Hard: 524288}}

// rlimitSpec is a resolved rlimit for the init; Soft and Hard use
// RLIM_INFINITY (all ones) for unlimited.
type rlimitSpec = shim.Rlimit

const rlimInfinity = math.MaxUint64

func rlimValue(v int64) uint64 {
	if v < 0 {
		return rlimInfinity
	}
	return uint64(v)
}

// resolveRlimits merges the spec's ulimits over the defaults, checking
// names and soft <= hard; the result is sorted by resource.
func resolveRlimits(ulimits []Ulimit) ([]rlimitSpec, error) {
	byRes := map[int]rlimitSpec{}
	for _, u := range defaultUlimits {
		byRes[rlimitNames[u.Name]] = rlimitSpec{Resource: rlimitNames[u.Name], Soft: rlimValue(u.Soft), Hard: rlimValue(u.Hard), Default: true}
	}
	seen := map[string]bool{}
	for _, u := range ulimits {
		name := strings.ToLower(u.Name)
		res, ok := rlimitNames[name]
		if !ok {
			return nil, fmt.Errorf("%w: ulimit %q: want one of %s", ErrInvalidSpec, u.Name, strings.Join(ulimitNames(), ", "))
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: ulimit %q given twice", ErrInvalidSpec, u.Name)
		}
		seen[name] = true
		if u.Soft < -1 || u.Hard < -1 {
			return nil, fmt.Errorf("%w: ulimit %s=%d:%d: values must be -1 (unlimited) or at least 0", ErrInvalidSpec, name, u.Soft, u.Hard)
		}
		soft, hard := rlimValue(u.Soft), rlimValue(u.Hard)
		if soft > hard {
			return nil, fmt.Errorf("%w: ulimit %s: soft limit %d is above the hard limit %d", ErrInvalidSpec, name, u.Soft, u.Hard)
		}
		byRes[res] = rlimitSpec{Resource: res, Soft: soft, Hard: hard}
	}
	out := make([]rlimitSpec, 0, len(byRes))
	for _, r := range byRes {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out, nil
}

func ulimitNames() []string {
	names := make([]string, 0, len(rlimitNames))
	for n := range rlimitNames {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
