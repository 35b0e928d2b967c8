package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/minke-io/minke/pkg/agent"
	"github.com/minke-io/minke/pkg/runtime"
)

// logFlags are the container log rotation flags, as docker's json-file
// log-opts max-size and max-file.
type logFlags struct {
	maxSize  string
	maxFiles int
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.maxSize, "log-max-size", "20m", "size at which a container's log file is rotated (k, m, g suffixes; -1: never)")
	fs.IntVar(&l.maxFiles, "log-max-files", runtime.DefaultLogMaxFiles, "log files kept per container, the current one included")
}

func (l *logFlags) apply(cfg *agent.WorkerConfig) error {
	n, err := parseLogSize(l.maxSize)
	if err != nil {
		return err
	}
	if l.maxFiles < 1 {
		return fmt.Errorf("invalid --log-max-files %d: want at least 1", l.maxFiles)
	}
	cfg.LogMaxSize, cfg.LogMaxFiles = n, l.maxFiles
	return nil
}

// parseLogSize reads "-1" (no rotation) or a positive size like 512k, 10m,
// 1g (powers of 1024, as docker's max-size).
func parseLogSize(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	mult := int64(1)
	num := strings.ToLower(strings.TrimSpace(s))
	num = strings.TrimSuffix(num, "b")
	for suffix, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30} {
		if strings.HasSuffix(num, suffix) {
			num, mult = strings.TrimSuffix(num, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid --log-max-size %q: want a size like 512k, 10m or 1g, or -1 for no rotation", s)
	}
	return n * mult, nil
}
