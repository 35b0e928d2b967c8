package shim

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMountTargetStaysInRoot checks that image symlinks cannot point a
// mount outside the root or into /proc or /sys.
func TestMountTargetStaysInRoot(t *testing.T) {
	root := t.TempDir()
	for link, target := range map[string]string{
		"escape": "/../../../../etc",
		"procsy": "/proc/sys",
		"relsys": "../sys/kernel",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := mountTarget(root, "/escape/x", true)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "etc", "x"); p != want {
		t.Errorf("/escape/x resolved to %s, want %s (inside the root)", p, want)
	}
	for _, target := range []string{"/procsy/kernel", "/relsys", "/proc/sys/kernel/core_pattern", "/sys/fs"} {
		if _, err := mountTarget(root, target, false); err == nil {
			t.Errorf("target %s was accepted", target)
		}
	}
}
