package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/minke-io/minke/internal/testimage"
)

// Binaries are the programs under test, built from this tree, and the
// image they run.
type Binaries struct {
	Manager, Worker, Swarmctl string
	// HelloTar is examples/hello as an OCI image tarball tagged
	// hello:latest.
	HelloTar string
}

// Build compiles manager, worker and swarmctl from this module with
// `go build -o dir/`, and writes examples/hello as an OCI tarball into
// dir. ctx bounds the whole build.
func Build(ctx context.Context, dir string) (Binaries, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir+"/",
		"github.com/minke-io/minke/cmd/manager",
		"github.com/minke-io/minke/cmd/swarmctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build: %w\n%s", err, out)
	}
	// Static, as `make build` builds them (see the Makefile): the worker,
	// and next to it, where workers look for it, the shim helper.
	cmd = exec.CommandContext(ctx, goBin, "build", "-o", dir+"/",
		"github.com/minke-io/minke/cmd/worker",
		"github.com/minke-io/minke/cmd/minke-shim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build (static): %w\n%s", err, out)
	}
	root, err := moduleRoot()
	if err != nil {
		return Binaries{}, err
	}
	img, err := testimage.Build(ctx, filepath.Join(root, "examples", "hello"))
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{
		Manager:  filepath.Join(dir, "manager"),
		Worker:   filepath.Join(dir, "worker"),
		Swarmctl: filepath.Join(dir, "swarmctl"),
		HelloTar: filepath.Join(dir, "hello.tar"),
	}
	if err := testimage.WriteOCITarball(b.HelloTar, img, "hello:latest"); err != nil {
		return Binaries{}, err
	}
	return b, nil
}

// moduleRoot is the nearest directory at or above the working directory
// (a test's package directory) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("clustertest: no go.mod at or above the working directory")
		}
		dir = parent
	}
}
