package clustertest

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseMetrics reads Prometheus' text format (a manager's /metrics) and
// returns the samples by series: the name with its labels as printed, such
// as minke_dispatcher_session_wakes_total{cause="network"}.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}
