//go:build !linux

package ha

import (
	"runtime"
	"testing"
)

func TestHA(t *testing.T) {
	t.Skipf("HA tests run managers in network namespaces and need root on Linux; this is %s", runtime.GOOS)
}
