//go:build linux

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/testimage"
)

// TestHealthcheckReportedAndUnhealthyReplaced runs --health-cmd checks
// (CMD-SHELL, so the image gets busybox as /bin/sh): a passing check is
// reported as HEALTHY through the agent; a failing one gets the task
// FAILED as unhealthy and the orchestrator starts a replacement.
func TestHealthcheckReportedAndUnhealthyReplaced(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs a static /bin/busybox (apt package busybox-static, see make deps)")
	}
	c := NewCluster(t)
	c.StartManager("m1", ManagerOptions{Worker: true})
	c.MustCtl("image", "push", helloWithShell(t))

	c.MustCtl("service", "create", "--name", "ok", "--health-cmd", "exit 0", "--health-interval", "200ms", "hsh:latest")
	c.Eventually(30*time.Second, "ok's task running and healthy", func() (bool, string) {
		for _, tk := range c.Tasks("ok") {
			st := tk.GetStatus()
			if st.GetState() == minkepb.TaskState_RUNNING && st.GetContainer().GetHealth() == minkepb.HealthState_HEALTHY &&
				strings.Contains(st.GetMessage(), "healthy") {
				return true, ""
			}
			return false, fmt.Sprintf("task %v, health %v, message %q", st.GetState(), st.GetContainer().GetHealth(), st.GetMessage())
		}
		return false, "no task"
	})

	c.MustCtl("service", "create", "--name", "sick", "-d", "--health-cmd", "echo not ready; exit 1", "--health-interval", "200ms",
		"--health-retries", "2", "--restart-delay", "0s", "hsh:latest")
	c.Eventually(40*time.Second, "sick's first task failed as unhealthy and replaced", func() (bool, string) {
		tasks := c.Tasks("sick")
		var failed *minkepb.Task
		for _, tk := range tasks {
			if tk.GetStatus().GetState() == minkepb.TaskState_FAILED {
				failed = tk
			}
		}
		if failed == nil {
			return false, fmt.Sprintf("%d tasks, none failed", len(tasks))
		}
		st := failed.GetStatus()
		if st.GetContainer().GetHealth() != minkepb.HealthState_UNHEALTHY || !strings.Contains(st.GetErr(), "unhealthy") ||
			!strings.Contains(st.GetErr(), "not ready") {
			return false, fmt.Sprintf("failed task: health %v, err %q", st.GetContainer().GetHealth(), st.GetErr())
		}
		return len(tasks) >= 2, fmt.Sprintf("%d tasks: no replacement yet", len(tasks))
	})
	c.MustCtl("service", "rm", "ok", "sick")
}

// helloWithShell writes the hello image plus busybox as /bin/sh, tagged
// hsh:latest, as an OCI tarball, and returns its path.
func helloWithShell(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, err := filepath.Abs("../../examples/hello")
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Build(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "bin/", Mode: 0o755, Typeflag: tar.TypeDir},
		{Name: "bin/sh", Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(sh))},
	} {
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tw.Write(sh); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hsh.tar")
	if err := testimage.WriteOCITarball(path, img, "hsh:latest"); err != nil {
		t.Fatal(err)
	}
	return path
}
