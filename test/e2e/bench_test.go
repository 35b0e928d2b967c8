//go:build linux

package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/minke-io/minke/internal/clustertest"
)

// BenchmarkCreateToRunning measures, on a one-node cluster (manager
// --worker, image already pushed), how long `swarmctl service create
// --replicas 3` takes to return: it returns once all 3 tasks run. Removing
// the service and waiting for its processes to go is not timed.
//
//	make bench-create
func BenchmarkCreateToRunning(b *testing.B) {
	c := NewCluster(b)
	c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()

	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("b%d", i)
		start := time.Now()
		c.MustCtl("service", "create", "--name", name, "--replicas", "3", "hello:latest")
		took = append(took, time.Since(start))

		b.StopTimer()
		if n := len(clustertest.Running(c.Tasks(name))); n != 3 {
			b.Fatalf("create returned with %d tasks running, want 3", n)
		}
		c.MustCtl("service", "rm", name)
		c.Eventually(20*time.Second, "the service's processes gone", func() (bool, string) {
			procs := c.ContainerProcs()
			return len(procs) == 0, fmt.Sprintf("%+v", procs)
		})
		b.StartTimer()
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	median := took[len(took)/2]
	if len(took)%2 == 0 {
		median = (took[len(took)/2-1] + median) / 2
	}
	b.ReportMetric(ms(median), "ms/create-to-3-running(median)")
	b.ReportMetric(ms(took[len(took)-1]), "ms/create-to-3-running(p100)")
}
