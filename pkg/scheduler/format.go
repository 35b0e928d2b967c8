package scheduler

import (
	"strconv"
	"strings"
)

// formatBytes renders a byte count for humans: 512B, 1KiB, 1.5MiB, 2GiB.
// Values are rounded to two decimals, so 1.999GiB may print as 2GiB.
func formatBytes(b int64) string {
	const unit = 1024
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	if b < unit {
		return strconv.FormatInt(b, 10) + "B"
	}
	v := float64(b)
	i := 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	return trimDecimals(v) + units[i]
}

// formatCPUs renders nano CPUs as a decimal number of CPUs: 0.5, 2, 1.25.
func formatCPUs(nano int64) string {
	return trimDecimals(float64(nano) / 1e9)
}

// trimDecimals formats v with at most two decimals and no trailing zeros.
func trimDecimals(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
