//go:build linux

package e2e

import (
	"testing"

	"github.com/minke-io/minke/internal/clustertest"
)

// TestMain builds manager, worker and swarmctl from this tree, and the hello
// image, once for the whole package.
func TestMain(m *testing.M) {
	clustertest.Main(m, "e2e", HostUnsupported() == "", func(b clustertest.Binaries) {
		Bins = Binaries{Manager: b.Manager, Worker: b.Worker, Swarmctl: b.Swarmctl}
		HelloTar = b.HelloTar
	})
}
