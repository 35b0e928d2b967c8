package clustertest

import (
	"os"
	"testing"

	"github.com/minke-io/minke/internal/netharness"
)

// NewHarness makes a netharness of n hosts (with netharness.LeakCheck) and
// a scratch directory for the nodes' data dirs and sockets, made by
// os.MkdirTemp("", pattern): keep pattern short, unix socket paths are
// limited to 108 bytes. Cleanups run in this order, pass or fail: the
// harness kills every process, then RemoveContainers removes what the
// nodes with a data dir directly below the directory left on the host,
// then the directory is removed.
func NewHarness(tb testing.TB, n int, pattern string) (*netharness.Harness, string) {
	tb.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
	tb.Cleanup(func() { RemoveContainers(tb, dir, NodeIDsUnder(dir)) })
	h := netharness.New(tb, n)
	netharness.LeakCheck(tb, h)
	return h, dir
}
