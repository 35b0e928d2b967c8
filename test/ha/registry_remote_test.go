package ha

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestRemotePushWithClientCertificate: from another machine, swarmctl
// --tls-dir --host tcp://… image push reaches the manager's registry over
// the network with the client certificate of 'swarmctl cluster
// client-cert', and a service runs the image; without the directory the
// push is refused before anything is sent. Once 'swarmctl cluster
// revoke-client-cert' revoked the certificate, the Control API refuses it.
func TestRemotePushWithClientCertificate(t *testing.T) {
	c := newCluster(t, 1, 1, options{worker: true, controlPort: controlPort})
	m := c.mgrs[0]
	ctlAddr := net.JoinHostPort(m.ip(), controlPort)
	dir := filepath.Join(c.dir, "client")
	c.mustCtl(m, "cluster", "client-cert", "--out", dir)
	remote := c.h.Host(1)

	r := ctlAt(t, remote, "", "--host", "tcp://"+ctlAddr, "--tls-dir", dir, "image", "push", helloTar, "remote:v1")
	if r.code != 0 || !strings.HasPrefix(strings.TrimSpace(r.out), "remote:v1@sha256:") {
		t.Fatalf("push over TCP with a client certificate: %v", r)
	}
	r = ctlAt(t, remote, "", "--host", "tcp://"+ctlAddr, "image", "push", helloTar, "remote:v2")
	if r.code == 0 || !strings.Contains(r.out, "--tls-dir") {
		t.Fatalf("push over TCP without a certificate: %v", r)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := c.client(m).CreateService(ctx, &minkepb.ServiceSpec{
		Name: "remote",
		Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "remote:v1"}},
		Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if img := svc.GetSpec().GetTask().GetContainer().GetImage(); img != "remote:v1" {
		t.Errorf("stored image %q, want remote:v1 (found in the cluster's registry)", img)
	}
	c.eventually(45*time.Second, "the pushed image running", func() (bool, string) {
		tasks, err := c.client(m).ListTasks(ctx, svc.GetMeta().GetId())
		if err != nil {
			return false, err.Error()
		}
		for _, task := range tasks {
			if task.GetStatus().GetState() == minkepb.TaskState_RUNNING {
				return true, ""
			}
			if e := task.GetStatus().GetErr(); e != "" {
				return false, e
			}
		}
		return false, fmt.Sprintf("%d tasks", len(tasks))
	})

	// Revoked, the certificate is refused by the Control API and the
	// registry alike.
	out := c.mustCtl(m, "cluster", "revoke-client-cert", dir)
	if !strings.Contains(out, "revoked client certificate serial") {
		t.Fatalf("revoke-client-cert: %s", out)
	}
	r = ctlAt(t, remote, "", "--host", "tcp://"+ctlAddr, "--tls-dir", dir, "node", "ls")
	if r.code == 0 || !strings.Contains(r.out, "revoke-client-cert") {
		t.Fatalf("node ls over TCP with a revoked client certificate: %v", r)
	}
	c.logHas(m, "refused call", "revoked")
	r = ctlAt(t, remote, "", "--host", "tcp://"+ctlAddr, "--tls-dir", dir, "image", "push", helloTar, "remote:v3")
	if r.code == 0 || !strings.Contains(r.out, "revoked") {
		t.Fatalf("push over TCP with a revoked client certificate: %v", r)
	}
}
