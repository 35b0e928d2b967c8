package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minke-io/minke/internal/testimage"
)

var (
	helloOnce sync.Once
	helloImg  v1.Image
	helloErr  error
)

// helloImage builds examples/hello once per test binary.
func helloImage(t *testing.T) v1.Image {
	t.Helper()
	helloOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		helloImg, helloErr = testimage.Build(ctx, "../../examples/hello")
	})
	if helloErr != nil {
		t.Fatal(helloErr)
	}
	return helloImg
}

// newTestRuntime gives each test its own root and cgroup parent, and sweeps
// whatever the test leaves behind.
func newTestRuntime(t *testing.T) *Runtime {
	t.Helper()
	return newTestRuntimeWith(t, Config{})
}

// newTestRuntimeWith is newTestRuntime with cfg's HelperBinary.
func newTestRuntimeWith(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	requireRoot(t)
	r, err := New(Config{
		Root:         t.TempDir(),
		CgroupParent: fmt.Sprintf("minke-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")),
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HelperBinary: cfg.HelperBinary,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Sweep(ctx); err != nil {
			t.Errorf("final sweep: %v", err)
		}
		r.Close()
		removeCgroupParent(r)
	})
	return r
}

func removeCgroupParent(r *Runtime) {
	switch cg := r.cgroups.(type) {
	case *cgroupV1:
		for _, c := range cg.controllers() {
			os.Remove(filepath.Join(cg.mount, c, cg.parent))
		}
	case *cgroupV2:
		os.Remove(filepath.Join(cg.mount, cg.parent))
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func create(t *testing.T, r *Runtime, spec ContainerSpec) *Container {
	t.Helper()
	c, err := r.Create(testCtx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Remove(ctx); err != nil {
			t.Errorf("cleanup remove: %v", err)
		}
		assertNoLeaks(t, r, spec.ID)
	})
	return c
}

// waitForLog waits until the container log contains want.
func waitForLog(t *testing.T, r *Runtime, id, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rc, err := r.OpenLog(id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of %s never contained %q; got:\n%s", id, want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nsLink(t *testing.T, pid, ns string) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join("/proc", pid, "ns", ns))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func isMounted(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], path) {
			return true
		}
	}
	return false
}

func TestContainerLifecycle(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, helloImage(t), "hello:latest")
	ctx := testCtx(t)

	c := create(t, r, ContainerSpec{
		ID:          "web-1",
		Image:       ref,
		MemoryLimit: 64 << 20,
		NanoCPUs:    5e8,
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := fmt.Sprint(c.Pid())
	for _, ns := range []string{"pid", "mnt", "uts", "net", "ipc"} {
		if nsLink(t, pid, ns) == nsLink(t, "self", ns) {
			t.Errorf("container shares the test's %s namespace", ns)
		}
	}
	if got := strings.TrimSpace(readFile(t, r.cgroups.MemoryLimitFile("web-1"))); got != "67108864" {
		t.Errorf("memory limit = %q, want 67108864", got)
	}
	if cg, ok := r.cgroups.(*cgroupV1); ok {
		if got := readFile(t, filepath.Join(cg.mount, "cpu", cg.parent, "web-1", "cpu.cfs_quota_us")); got != "50000" {
			t.Errorf("cpu.cfs_quota_us = %q, want 50000", got)
		}
	}
	if procs, _ := r.cgroups.Procs("web-1"); len(procs) != 1 || fmt.Sprint(procs[0]) != pid {
		t.Errorf("cgroup procs = %v, want [%s]", procs, pid)
	}
	out := waitForLog(t, r, "web-1", "tick 1")
	if !strings.Contains(out, "hello from web-1 pid 1\n") {
		t.Errorf("log does not show hostname web-1 and pid 1:\n%s", out)
	}

	if err := c.Stop(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 0 || st.Signal != 0 || st.OOMKilled {
		t.Errorf("exit status %+v, want clean exit 0", st)
	}
	waitForLog(t, r, "web-1", "bye")

	dir := r.containerDir("web-1")
	cgDir := filepath.Dir(r.cgroups.MemoryLimitFile("web-1"))
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if isMounted(t, dir) {
		t.Error("rootfs still mounted after Remove")
	}
	for _, p := range []string{dir, cgDir} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Remove: %v", p, err)
		}
	}
	if err := c.Remove(ctx); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func TestExitCodeAndKill(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, helloImage(t), "hello:latest")
	ctx := testCtx(t)

	c := create(t, r, ContainerSpec{ID: "exit-3", Image: ref, Args: []string{"-exit", "3"}, User: "nobody"})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Wait(ctx); err != nil || st.ExitCode != 3 {
		t.Fatalf("Wait = %+v, %v; want exit code 3", st, err)
	}

	k := create(t, r, ContainerSpec{ID: "killed", Image: ref})
	if err := k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Kill(9); err != nil {
		t.Fatal(err)
	}
	if st, err := k.Wait(ctx); err != nil || st.Signal != 9 || st.ExitCode != 137 {
		t.Fatalf("Wait = %+v, %v; want SIGKILL, 137", st, err)
	}
}

func TestStartCommandNotFound(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, helloImage(t), "hello:latest")
	ctx := testCtx(t)

	tests := []struct {
		name string
		spec ContainerSpec
		want string
	}{
		{"not in PATH", ContainerSpec{ID: "nf", Image: ref, Entrypoint: []string{"foo"}},
			`starting container: executable "foo" not found in $PATH`},
		{"unknown user", ContainerSpec{ID: "nu", Image: ref, User: "ghost"},
			`starting container: unable to find user ghost`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := create(t, r, tc.spec)
			err := c.Start(ctx)
			if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSweepCleansLeftoverContainer(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, helloImage(t), "hello:latest")
	ctx := testCtx(t)

	c, err := r.Create(ctx, ContainerSpec{ID: "orphan", Image: ref})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, r, "orphan", "hello from")

	// A new worker process on the same root: it knows nothing of c.
	r2, err := New(Config{Root: r.root, CgroupParent: r.cgroups.(interface{ parentName() string }).parentName()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx)
	if err != nil || st.Signal != 9 {
		t.Fatalf("orphan exit = %+v, %v; want killed", st, err)
	}
	if isMounted(t, r.containerDir("orphan")) {
		t.Error("rootfs still mounted after Sweep")
	}
	if _, err := os.Stat(r.containerDir("orphan")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container dir left: %v", err)
	}
	if ids, _ := r.cgroups.List(); len(ids) != 0 {
		t.Errorf("cgroups left: %v", ids)
	}
}

// TestPullOnce checks that concurrent pulls share one download and that
// pull errors name the reference.
func TestPullOnce(t *testing.T) {
	r := newTestRuntime(t)
	img := helloImage(t)
	var blobGets atomic.Int32
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			blobGets.Add(1)
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	ref := srv.Listener.Addr().String() + "/hello:v1"
	ctx := testCtx(t)
	if err := testimage.Push(ctx, ref, img); err != nil {
		t.Fatal(err)
	}
	blobGets.Store(0)

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.Pull(ctx, ref)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := blobGets.Load(); n != 2 { // config + one layer
		t.Errorf("%d blob downloads for 4 concurrent pulls, want 2", n)
	}
	got, err := r.LocalImage(ref)
	if err != nil || len(got.Layers) != 1 || got.Config.Entrypoint[0] != testimage.BinaryPath {
		t.Fatalf("LocalImage = %+v, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(r.layerDir(digestHex(got.Layers[0])), "hello")); err != nil {
		t.Errorf("layer not unpacked: %v", err)
	}

	missing := srv.Listener.Addr().String() + "/nope:latest"
	_, err = r.Pull(ctx, missing)
	if !errors.Is(err, ErrPull) || !strings.Contains(err.Error(), missing) {
		t.Errorf("pull of missing image: err = %v, want ErrPull naming %s", err, missing)
	}
}
