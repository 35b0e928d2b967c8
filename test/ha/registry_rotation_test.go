package ha

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestRegistryAcrossRotateCA: the built-in registry's mutual TLS follows a
// CA rotation. After every node renewed onto the new root and the old root
// was dropped, a push (a client certificate from the new root, copied
// between managers with their renewed certificates) and the workers' pulls
// of it (renewed node certificates, against registries presenting renewed
// manager certificates) work, as does a pull of an image pushed before.
func TestRegistryAcrossRotateCA(t *testing.T) {
	c := newCluster(t, 3, 0, options{worker: true})
	before := c.mustCtl(c.leader(), "image", "push", helloTar, "hello:before")
	if !strings.HasPrefix(before, "hello:before@sha256:") {
		t.Fatalf("image push printed %q", before)
	}
	out := c.mustCtl(c.follower(), "cluster", "rotate-ca")
	if !strings.Contains(out, "CA rotation started") {
		t.Fatalf("rotate-ca: %s", out)
	}
	m := c.leader()
	c.eventually(45*time.Second, "the CA rotation finished", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		s, err := c.client(m).CAStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		if !s.GetRotating() && s.GetRenewed() == s.GetNodes() {
			t.Logf("rotation finished: %v", s)
			return true, ""
		}
		return false, fmt.Sprintf("%v", s)
	})
	after := c.mustCtl(c.follower(), "image", "push", helloTar, "hello:after")
	if !strings.HasPrefix(after, "hello:after@sha256:") {
		t.Fatalf("image push after the rotation printed %q", after)
	}
	for _, image := range []string{"hello:after", "hello:before"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*callTimeout)
		svc, err := c.client(c.leader()).CreateService(ctx, &minkepb.ServiceSpec{
			Name: strings.ReplaceAll(image, ":", "-"),
			Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: image}},
			Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 3}},
		})
		cancel()
		if err != nil {
			t.Fatalf("create a service of %s: %v", image, err)
		}
		c.eventually(45*time.Second, image+": 3 tasks running", func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			tasks, err := c.client(m).ListTasks(ctx, svc.GetMeta().GetId())
			if err != nil {
				return false, err.Error()
			}
			n, why := 0, ""
			for _, task := range tasks {
				if task.GetStatus().GetState() == minkepb.TaskState_RUNNING {
					n++
				} else if e := task.GetStatus().GetErr(); e != "" {
					why = e
				}
			}
			return n == 3, fmt.Sprintf("%d running %s", n, why)
		})
		t.Logf("%s: 3 tasks running", image)
	}
}
