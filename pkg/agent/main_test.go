package agent

import (
	"os"
	"testing"

	"github.com/minke-io/minke/pkg/runtime"
)

// TestMain lets the test binary serve as the container init and shim, as
// the worker binary does, for the tests that run real containers.
func TestMain(m *testing.M) {
	runtime.MaybeRunInit()
	os.Exit(m.Run())
}
