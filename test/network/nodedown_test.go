//go:build linux

package network

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
)

// TestIngressDropsDeadWorker: when a worker host dies (its processes are
// killed and it drops off the network), its tasks leave every other node's
// ingress backends as soon as the managers mark it DOWN, so that every
// connection is answered again by a live task.
func TestIngressDropsDeadWorker(t *testing.T) {
	c := newCluster(t, 2)
	w1, w2 := c.workers[0], c.workers[1]
	c.ctl("service", "create", "--detach", "--name", "web", "--replicas", "4", "--replicas-max-per-node", "2",
		"--publish", "8080:80", "hello:latest", "-listen", ":80")
	c.ctl("service", "create", "--detach", "--name", "client", "--constraint", "node.hostname=="+w1.name, "hello:latest")
	var clientID string
	for id := range c.running("client", 1) {
		clientID = id
	}
	c.running("web", 4)
	server := nameserver(t, w1, clientID)
	addr := net.JoinHostPort(w1.host.IP(), "8080")
	clustertest.Eventually(t, 10*time.Second, "all 4 tasks answer", func() (bool, string) {
		seen := map[string]bool{}
		for range 8 {
			got, err := get(c.mgr.host, addr)
			if err != nil {
				return false, err.Error()
			}
			seen[got] = true
		}
		return len(seen) == 4, fmt.Sprintf("%d answered", len(seen))
	})

	killed := time.Now()
	c.h.Isolate(w2.host.Index())
	c.h.KillHost(w2.host.Index())
	// From here on every answer must come from a task on w1; connections
	// the dead host's tasks were picked for time out until they are gone.
	var recovered time.Duration
	clustertest.Eventually(t, 15*time.Second, "10 answers in a row from live tasks", func() (bool, string) {
		for i := range 10 {
			got, err := getWithin(c.mgr.host, addr, 300*time.Millisecond)
			if err != nil {
				return false, fmt.Sprintf("answer %d: %v", i, err)
			}
			if tk := c.taskByID("web", got); tk == nil || tk.GetNodeId() != w1.nodeID {
				return false, "answered by " + got + ", not a task on " + w1.name
			}
		}
		recovered = time.Since(killed)
		return true, ""
	})
	t.Logf("ingress answered only by live tasks %v after the worker host died", recovered.Round(10*time.Millisecond))

	// tasks.web, seen from a container on w1, lists only live tasks too.
	live := map[string]bool{}
	for _, tk := range c.tasks("web") {
		if tk.GetNodeId() == w1.nodeID && tk.GetDesiredState() == minkepb.TaskState_RUNNING {
			p, _ := netip.ParsePrefix(tk.GetStatus().GetContainer().GetAddress())
			live[p.Addr().String()] = true
		}
	}
	clustertest.Eventually(t, 5*time.Second, "tasks.web without the dead host's tasks", func() (bool, string) {
		got, err := lookup(w1, clientID, server, "tasks.web")
		if err != nil {
			return false, err.Error()
		}
		for _, a := range got {
			if !live[a] {
				return false, fmt.Sprintf("%v lists %s", got, a)
			}
		}
		return len(got) > 0, fmt.Sprint(got)
	})
}
