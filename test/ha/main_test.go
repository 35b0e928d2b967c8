//go:build linux

package ha

import (
	"os"
	"testing"

	"github.com/minke-io/minke/internal/clustertest"
)

// Set once by TestMain, before any test runs.
var (
	managerBin, swarmctlBin, workerBin string
	// helloTar is examples/hello as an OCI tarball tagged hello:latest.
	helloTar string
)

// TestMain builds manager and swarmctl from this tree, and the hello
// image, once for the package. Without root every test skips, so nothing
// is built.
func TestMain(m *testing.M) {
	clustertest.Main(m, "ha", os.Geteuid() == 0, func(b clustertest.Binaries) {
		managerBin, swarmctlBin, workerBin = b.Manager, b.Swarmctl, b.Worker
		helloTar = b.HelloTar
	})
}

// requireRoot skips t unless the machine can run the tests.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("HA tests run managers in network namespaces and need root; running as uid %d", os.Geteuid())
	}
	if managerBin == "" {
		t.Fatal("ha: binaries not built (TestMain builds them)")
	}
}
