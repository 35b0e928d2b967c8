package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseByteSize reads "8GiB", "512MB", "1048576": a positive size with an
// optional binary (KiB, MiB, GiB, TiB) or decimal (KB, MB, GB, TB) unit.
func parseByteSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, mult := strings.TrimSpace(v), int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("want a positive size such as 8GiB, 512MiB or 1048576")
	}
	return n * mult, nil
}
