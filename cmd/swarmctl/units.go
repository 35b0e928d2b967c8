package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// sizeUnits maps a lower-cased size suffix to its multiplier. Like docker,
// k, m and g are binary: 64M is 64 MiB.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
}

// parseSize parses a byte size for flag: an integer with an optional
// case-insensitive suffix b, k/kb/kib, m/mb/mib or g/gb/gib.
func parseSize(flag, v string) (int64, error) {
	bad := fmt.Errorf("invalid --%s %q: want a size like 64M, 512MiB or 1G", flag, v)
	s := strings.TrimSpace(v)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, bad
	}
	mult, ok := sizeUnits[strings.ToLower(s[i:])]
	if !ok {
		return 0, bad
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid --%s %q: too large", flag, v)
	}
	return n * mult, nil
}

// parseNanoCPUs parses a positive decimal number of CPUs for flag into nano
// CPUs (0.5 → 500000000), exactly, with at most 9 decimal places.
func parseNanoCPUs(flag, v string) (int64, error) {
	bad := fmt.Errorf("invalid --%s %q: want a positive number of CPUs like 0.5 or 2 (at most 9 decimal places)", flag, v)
	whole, frac, hasDot := strings.Cut(strings.TrimSpace(v), ".")
	if (whole == "" && frac == "") || (hasDot && frac == "") || len(frac) > 9 || !allDigits(whole) || !allDigits(frac) {
		return 0, bad
	}
	var w int64
	if whole != "" {
		var err error
		if w, err = strconv.ParseInt(whole, 10, 64); err != nil || w > math.MaxInt64/int64(1e9)-1 {
			return 0, fmt.Errorf("invalid --%s %q: too large", flag, v)
		}
	}
	var f int64
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	n := w*1e9 + f
	if n <= 0 {
		return 0, bad
	}
	return n, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// parseCount parses a non-negative integer for flag.
func parseCount(flag, v string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid --%s %q: want a non-negative integer", flag, v)
	}
	return n, nil
}

// parseDuration parses a non-negative Go duration for flag.
func parseDuration(flag, v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid --%s %q: want a non-negative duration like 10s, 500ms or 1m30s", flag, v)
	}
	return d, nil
}

// parseKeyValue checks a KEY=VALUE entry for flag; the value may be empty
// and may itself contain '='.
func parseKeyValue(flag, v string) (key, value string, err error) {
	key, value, ok := strings.Cut(v, "=")
	if !ok || key == "" || strings.ContainsAny(key, " \t\n") {
		return "", "", fmt.Errorf("invalid --%s %q: want KEY=VALUE", flag, v)
	}
	return key, value, nil
}

// scaleTarget is one NAME=N argument of `service scale`.
type scaleTarget struct {
	Service  string
	Replicas uint64
}

// parseScaleArg parses a `service scale` argument NAME=N.
func parseScaleArg(arg string) (scaleTarget, error) {
	name, n, ok := strings.Cut(arg, "=")
	if !ok || name == "" {
		return scaleTarget{}, fmt.Errorf("invalid scale argument %q: want SERVICE=REPLICAS, e.g. web=3", arg)
	}
	r, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return scaleTarget{}, fmt.Errorf("invalid scale argument %q: replicas must be a non-negative integer", arg)
	}
	return scaleTarget{Service: name, Replicas: r}, nil
}
