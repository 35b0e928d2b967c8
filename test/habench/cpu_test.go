//go:build linux

package habench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of CPU times in /proc (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU returns the user+system CPU time pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which may hold spaces, start at state
	// (field 3); utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	var total int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		total += n
	}
	return time.Duration(total) * clockTick, nil
}

// hostCPU returns the busy and total CPU time of the host (all cores).
func hostCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i >= 8 { // guest times are already counted in user and nice
			break
		}
		total += time.Duration(n) * clockTick
		if i != 3 && i != 4 { // idle, iowait
			busy += time.Duration(n) * clockTick
		}
	}
	return busy, total, nil
}

// cpuSample is the CPU used so far by the managers, this process and the
// whole host.
type cpuSample struct {
	managers, self, hostBusy, hostTotal time.Duration
}

func sampleCPU(c *cluster) (cpuSample, error) {
	var s cpuSample
	for _, m := range c.mgrs {
		d, err := procCPU(m.cmd.Process.Pid)
		if err != nil {
			return s, err
		}
		s.managers += d
	}
	var err error
	if s.self, err = procCPU(os.Getpid()); err != nil {
		return s, err
	}
	s.hostBusy, s.hostTotal, err = hostCPU()
	return s, err
}

// cpuUse is what was used between two samples.
type cpuUse struct {
	managers, self, hostBusy, hostTotal time.Duration
}

func (a cpuSample) until(b cpuSample) cpuUse {
	return cpuUse{b.managers - a.managers, b.self - a.self, b.hostBusy - a.hostBusy, b.hostTotal - a.hostTotal}
}

// share is part/whole as a percentage of the host's CPU time.
func (u cpuUse) share(part time.Duration) float64 {
	if u.hostTotal == 0 {
		return 0
	}
	return 100 * float64(part) / float64(u.hostTotal)
}
