package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// buildHelper builds cmd/minke-shim as `make build` does (static, no
// -race) and returns its path.
func buildHelper(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	helper := filepath.Join(t.TempDir(), HelperName)
	build := exec.CommandContext(ctx, "go", "build", "-o", helper, "../../cmd/minke-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", HelperName, err, out)
	}
	return helper
}
