//go:build linux

package network

import (
	"os"
	"testing"

	"github.com/minke-io/minke/internal/clustertest"
)

var bins clustertest.Binaries

// TestMain builds the binaries and the hello image once; without root
// every test skips and nothing is built.
func TestMain(m *testing.M) {
	clustertest.Main(m, "network", os.Geteuid() == 0, func(b clustertest.Binaries) { bins = b })
}
