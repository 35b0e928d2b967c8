package clustertest

import (
	"path/filepath"
	"testing"

	"github.com/minke-io/minke/pkg/network"
)

// RemoveNetworks removes the bridges and nftables tables that nodes with
// data dirs below dir left in this network namespace (nodes in other
// namespaces take theirs with them). Call it after the nodes' processes
// stopped and their containers were removed.
func RemoveNetworks(tb testing.TB, dir string) {
	tb.Helper()
	for _, pattern := range []string{"*/network", "*/*/network"} {
		states, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, s := range states {
			if err := network.RemoveLeftovers(s); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
	}
}
