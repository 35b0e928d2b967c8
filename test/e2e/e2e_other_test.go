//go:build !linux

package e2e

import (
	"runtime"
	"testing"
)

func TestE2E(t *testing.T) {
	t.Skipf("e2e tests run containers and need root on Linux; this is %s", runtime.GOOS)
}
