package runtime

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minke-io/minke/internal/testimage"
)

// TestGivenNetNSJoined starts containers with ContainerSpec.NetNSPath
// (the agent's per-container network namespace), with and without --init,
// and checks that the container's process is in that namespace; and one
// without, which gets a new namespace of its own.
func TestGivenNetNSJoined(t *testing.T) {
	r := newTestRuntimeWith(t, staticHelper(t)) // --init needs a helper without cgo
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	nsPath := newNetNS(t)
	var want unix.Stat_t
	if err := unix.Stat(nsPath, &want); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id    string
		netns string
		init  bool
	}{{"netns-given", nsPath, false}, {"netns-given-init", nsPath, true}, {"netns-own", "", false}} {
		t.Run(tc.id, func(t *testing.T) {
			c := create(t, r, ContainerSpec{ID: tc.id, Image: ref, Args: []string{"pause"}, NetNSPath: tc.netns, Init: tc.init})
			ctx := testCtx(t)
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Remove(ctx) })
			pid := strconv.Itoa(c.Pid())
			if tc.init { // the command is the reaper's child
				b, err := os.ReadFile(filepath.Join("/proc", pid, "task", pid, "children"))
				if err != nil || len(b) == 0 {
					t.Fatalf("children of the reaper %s: %q %v", pid, b, err)
				}
				pid = string(b[:len(b)-1])
				if i := len(pid); i > 0 && pid[i-1] == ' ' {
					pid = pid[:i-1]
				}
			}
			var got unix.Stat_t
			if err := unix.Stat(filepath.Join("/proc", pid, "ns", "net"), &got); err != nil {
				t.Fatal(err)
			}
			same := got.Ino == want.Ino && got.Dev == want.Dev
			if tc.netns != "" && !same {
				t.Errorf("the command (pid %s) is in network namespace %d, want the given %s (%d)", pid, got.Ino, tc.netns, want.Ino)
			}
			if tc.netns == "" && (same || nsLink(t, pid, "net") == nsLink(t, "self", "net")) {
				t.Errorf("the command (pid %s) without NetNSPath is not in a network namespace of its own", pid)
			}
		})
	}
}

// newNetNS creates a network namespace bound at a file of the test's, as
// `ip netns add` does, and removes it when the test ends.
func newNetNS(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, now in the new namespace, ends with
		// the goroutine.
		goruntime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(path, unix.MNT_DETACH) })
	return path
}
