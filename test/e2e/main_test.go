//go:build linux

package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/minke-io/minke/internal/testimage"
)

// TestMain builds manager, worker and swarmctl from this tree, and the hello
// image, once for the whole package.
func TestMain(m *testing.M) {
	flag.Parse()
	if HostUnsupported() != "" || !wantsToRun() {
		os.Exit(m.Run()) // every test skips
	}
	dir, err := os.MkdirTemp("", "minke-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := 1
	if err := setup(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// wantsToRun is false for `go test -list`, which runs nothing.
func wantsToRun() bool {
	f := flag.Lookup("test.list")
	return f == nil || f.Value.String() == ""
}

func setup(dir string) error {
	// Orphaned containers of a SIGKILLed node become the test binary's
	// children, and cleanup reaps them.
	if err := becomeSubreaper(); err != nil {
		return fmt.Errorf("becoming a subreaper: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir+"/",
		"github.com/minke-io/minke/cmd/manager",
		"github.com/minke-io/minke/cmd/worker",
		"github.com/minke-io/minke/cmd/swarmctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	Bins = Binaries{
		Manager:  filepath.Join(dir, "manager"),
		Worker:   filepath.Join(dir, "worker"),
		Swarmctl: filepath.Join(dir, "swarmctl"),
	}
	img, err := testimage.Build(ctx, filepath.Join("..", "..", "examples", "hello"))
	if err != nil {
		return err
	}
	HelloTar = filepath.Join(dir, "hello.tar")
	return testimage.WriteOCITarball(HelloTar, img, "hello:latest")
}
