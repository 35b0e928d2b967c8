package clustertest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

// buildTimeout bounds Main's build.
const buildTimeout = 5 * time.Minute

// Main is the body of a TestMain that builds the binaries once for the
// whole package. It parses the flags; unless runnable is false (the host
// cannot run the tests, which then skip) or this is `go test -list`, it
// makes this process the subreaper of its orphans (a SIGKILLed node's
// containers become its children, and cleanup reaps them), builds the
// binaries into a temporary directory named after pkg and hands them to
// use before running m. It exits with m's code, or 1 if setup failed
// (reported on stderr prefixed "pkg:"), removing the directory first.
func Main(m *testing.M, pkg string, runnable bool, use func(Binaries)) {
	flag.Parse()
	if !runnable || !wantsToRun() {
		os.Exit(m.Run()) // every test skips
	}
	dir, err := os.MkdirTemp("", "minke-"+pkg+"-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, pkg+":", err)
		os.Exit(1)
	}
	code := 1
	if err := setup(dir, use); err != nil {
		fmt.Fprintln(os.Stderr, pkg+":", err)
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

func setup(dir string, use func(Binaries)) error {
	if err := BecomeSubreaper(); err != nil {
		return fmt.Errorf("becoming a subreaper: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	b, err := Build(ctx, dir)
	if err != nil {
		return err
	}
	use(b)
	return nil
}
