//go:build linux

package bootstrap

import (
	"os"
	"testing"

	"github.com/minke-io/minke/internal/clustertest"
)

// bins are manager, worker and swarmctl built from this tree by TestMain:
// the pre-baked image's /opt/minke/bin.
var bins clustertest.Binaries

func TestMain(m *testing.M) {
	clustertest.Main(m, "bootstrap", os.Geteuid() == 0, func(b clustertest.Binaries) { bins = b })
}
