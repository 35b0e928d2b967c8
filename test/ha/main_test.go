//go:build linux

package ha

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/minke-io/minke/internal/testimage"
)

// Set once by TestMain, before any test runs.
var (
	managerBin, swarmctlBin, workerBin string
	// helloTar is examples/hello as an OCI tarball tagged hello:latest.
	helloTar string
)

// TestMain builds manager and swarmctl from this tree, and the hello
// image, once for the package. Without root every test skips, so nothing
// is built.
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() != 0 || !wantsToRun() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "minke-ha-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ha:", err)
		os.Exit(1)
	}
	code := 1
	if err := setup(dir); err != nil {
		fmt.Fprintln(os.Stderr, "ha:", err)
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
	// Containers of a SIGKILLed manager (--worker) become the test
	// binary's children, and their cleanup reaps them.
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("becoming a subreaper: %w", errno)
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
	managerBin = filepath.Join(dir, "manager")
	swarmctlBin = filepath.Join(dir, "swarmctl")
	workerBin = filepath.Join(dir, "worker")
	img, err := testimage.Build(ctx, filepath.Join("..", "..", "examples", "hello"))
	if err != nil {
		return err
	}
	helloTar = filepath.Join(dir, "hello.tar")
	return testimage.WriteOCITarball(helloTar, img, "hello:latest")
}

// requireRoot skips t unless the machine can run the tests.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("HA tests run managers in network namespaces and need root; running as uid %d", os.Geteuid())
	}
	if managerBin == "" {
		t.Fatal("ha: binaries not built (TestMain builds them)")
	}
}
