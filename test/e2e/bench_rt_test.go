//go:build linux

package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkWorkerIdleRSS prints the resident memory of an idle worker
// process (joined, gossiping, no containers), and of one container's shim,
// next to dockerd + containerd's idle figure.
//
//	make bench-runtime
func BenchmarkWorkerIdleRSS(b *testing.B) {
	c := NewCluster(b)
	m := c.StartManager("m1", ManagerOptions{})
	w := c.StartWorker("w1", "127.0.0.2", c.JoinToken(), m)
	// Let start-up garbage be collected: the Go runtime returns it lazily.
	time.Sleep(5 * time.Second)
	var rss int64
	for range b.N {
		rss = vmRSS(b, w.Pid())
	}
	b.ReportMetric(float64(rss)/(1<<20), "MiB/worker-idle-rss")

	c.PushHello()
	c.MustCtl("service", "create", "--name", "one", "hello:latest")
	tasks := c.WaitRunning("one", 1, 30*time.Second)
	shims := shimProcs([]string{tasks[0].GetMeta().GetId()})
	var shimRSS int64
	if len(shims) == 1 {
		shimRSS = vmRSS(b, shims[0].Pid)
		b.ReportMetric(float64(shimRSS)/(1<<20), "MiB/shim-rss")
	}
	fmt.Printf("\nworker idle RSS: %.1f MiB (target <= 25 MiB; dockerd + containerd idle: about 165 MiB)\n", float64(rss)/(1<<20))
	fmt.Printf("shim RSS per running container: %.1f MiB\n", float64(shimRSS)/(1<<20))
	c.MustCtl("service", "rm", "one")
}

// vmRSS reads VmRSS of pid in bytes.
func vmRSS(b *testing.B, pid int) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
