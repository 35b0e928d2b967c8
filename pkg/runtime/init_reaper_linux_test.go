package runtime

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minke-io/minke/internal/shim"
	"github.com/minke-io/minke/internal/testimage"
)

// threadStatus reads the given fields of /proc/PID/task/*/status: one map
// per thread.
func threadStatus(t *testing.T, pid int, fields ...string) map[string]map[string]string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("threads of pid %d: %v (%d found)", pid, err, len(dirs))
	}
	out := map[string]map[string]string{}
	for _, d := range dirs {
		f, err := os.Open(filepath.Join(d, "status"))
		if err != nil {
			continue // the thread exited meanwhile
		}
		m := map[string]string{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			for _, want := range fields {
				if ok && k == want {
					m[k] = strings.TrimSpace(v)
				}
			}
		}
		f.Close()
		out[filepath.Base(d)] = m
	}
	return out
}

// TestInitReaperThreadsConfined runs a container under --init and reads
// every thread of its pid 1, the reaper, from the host: each one has the
// container's capabilities (docker's default set, or none for a non-root
// user) in its effective, permitted and bounding sets, no_new_privs and
// the seccomp filter — not only the thread that forked the command.
func TestInitReaperThreadsConfined(t *testing.T) {
	r := newTestRuntimeWith(t, staticHelper(t))
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	const dflt = "00000000a80425fb" // docker's default capability set
	for _, tc := range []struct {
		name, user, eff string
	}{
		{"root", "", dflt},
		{"nobody", "nobody", "0000000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "reaper-" + tc.name
			c := create(t, r, ContainerSpec{ID: id, Image: ref, Args: []string{"pause"}, Init: true, User: tc.user})
			ctx := testCtx(t)
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			pid := c.Pid()
			cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
			if err != nil || !strings.HasPrefix(string(cmdline), InitArg+"\x00") {
				t.Fatalf("pid %d is %q (%v), want the init reaper %s", pid, cmdline, err, InitArg)
			}
			// The Go runtime starts its threads lazily; wait (bounded) until
			// there are several, so that the check covers more than one.
			var threads map[string]map[string]string
			deadline := time.Now().Add(5 * time.Second)
			for {
				threads = threadStatus(t, pid, "CapInh", "CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
				if len(threads) >= 3 || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if len(threads) < 2 {
				t.Fatalf("the reaper has %d threads; want several to check", len(threads))
			}
			want := map[string]string{"CapInh": "0000000000000000", "CapEff": tc.eff, "CapPrm": tc.eff, "CapBnd": dflt,
				"CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}
			for tid, got := range threads {
				for k, v := range want {
					if got[k] != v {
						t.Errorf("thread %s of the reaper (pid %d): %s = %q, want %q", tid, pid, k, got[k], v)
					}
				}
			}
			t.Logf("%d reaper threads checked", len(threads))
			if err := c.Stop(ctx, 10*time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

var (
	staticOnce sync.Once
	staticDir  string
	staticBin  string
	staticErr  error
)

// staticHelper builds cmd/minke-shim without cgo, as `make build` does:
// the helper whose init can confine all its threads. (The test binary
// links cgo, which -race needs.)
func staticHelper(t testing.TB) string {
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

func removeStaticHelper() {
	if staticDir != "" {
		os.RemoveAll(staticDir)
	}
}

// TestInitRefusedWithCgoHelper: a helper binary that links cgo cannot
// confine the threads cgo started, so --init is refused with what to do
// rather than run a half-confined pid 1.
func TestInitRefusedWithCgoHelper(t *testing.T) {
	if _, _, errno := syscall.AllThreadsSyscall(syscall.SYS_GETPID, 0, 0, 0); errno != syscall.ENOTSUP {
		t.Skip("this test binary does not link cgo")
	}
	r := newTestRuntime(t) // the test binary is the helper
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	c := create(t, r, ContainerSpec{ID: "reaper-cgo", Image: ref, Args: []string{"pause"}, Init: true})
	err := c.Start(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") || !strings.Contains(err.Error(), shim.ErrThreadsUnsupported.Error()) {
		t.Fatalf("Start = %v, want the refusal naming CGO_ENABLED=0", err)
	}
}
