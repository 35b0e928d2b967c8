//go:build linux

package schedbench

import (
	"testing"

	"github.com/minke-io/minke/internal/clustertest"
)

// Set once by TestMain, before any test runs.
var managerBin, workerBin string

// TestMain builds manager and worker from this tree once for the package.
// Neither needs root here: the managers run without the worker role and
// the worker's runtime is simulated.
func TestMain(m *testing.M) {
	clustertest.Main(m, "schedbench", true, func(b clustertest.Binaries) {
		managerBin, workerBin = b.Manager, b.Worker
	})
}

func requireBinaries(tb testing.TB) {
	tb.Helper()
	if managerBin == "" {
		tb.Fatal("schedbench: binaries not built (TestMain builds them)")
	}
}
