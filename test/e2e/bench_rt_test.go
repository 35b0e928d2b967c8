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
	var rss, anon, file int64
	for range b.N {
		rss = statusKB(b, w.Pid(), "VmRSS:")
		anon, file = statusKB(b, w.Pid(), "RssAnon:"), statusKB(b, w.Pid(), "RssFile:")
	}
	b.ReportMetric(float64(rss)/(1<<20), "MiB/worker-idle-rss")

	c.PushHello()
	c.MustCtl("service", "create", "--name", "one", "hello:latest")
	tasks := c.WaitRunning("one", 1, 30*time.Second)
	shims := shimProcs([]string{tasks[0].GetMeta().GetId()})
	var shimRSS int64
	if len(shims) == 1 {
		shimRSS = statusKB(b, shims[0].Pid, "VmRSS:")
		b.ReportMetric(float64(shimRSS)/(1<<20), "MiB/shim-rss")
	}
	fmt.Printf("\nworker idle RSS: %.1f MiB = %.1f MiB anonymous (heap, stacks) + %.1f MiB file (the binary's pages)\n",
		float64(rss)/(1<<20), float64(anon)/(1<<20), float64(file)/(1<<20))
	fmt.Println("  (target <= 25 MiB; dockerd + containerd idle: about 165 MiB)")
	fmt.Printf("shim RSS per running container: %.1f MiB\n", float64(shimRSS)/(1<<20))
	c.MustCtl("service", "rm", "one")
}

// statusKB reads a kB field of /proc/PID/status (VmRSS:, RssAnon:, …) in
// bytes.
func statusKB(b *testing.B, pid int, field string) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
