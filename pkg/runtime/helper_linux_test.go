package runtime

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"testing"
	"time"
)

var (
	staticOnce sync.Once
	staticDir  string
	staticBin  string
	staticErr  error
)

// buildHelper builds cmd/minke-shim without cgo, as `make build` does:
// the helper whose init can confine all its threads. (The test binary
// links cgo, which -race needs.)
func buildHelper(t testing.TB) string {
	t.Helper()
	staticOnce.Do(func() {
		if staticDir, staticErr = os.MkdirTemp("", "minke-static-shim-"); staticErr != nil {
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(goruntime.GOROOT(), "bin", "go")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		staticBin = filepath.Join(staticDir, HelperName)
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", staticBin, "github.com/minke-io/minke/cmd/minke-shim")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			staticErr = errors.New("go build minke-shim: " + err.Error() + "\n" + string(out))
		}
	})
	if staticErr != nil {
		t.Fatal(staticErr)
	}
	return staticBin
}

func removeHelper() {
	if staticDir != "" {
		os.RemoveAll(staticDir)
	}
}
