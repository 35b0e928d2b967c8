//go:build linux

package network

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minke-io/minke/internal/clustertest"
)

// callerOf listens on :port inside task id's network namespace on w and
// returns a function that dials addr from inside client's namespace on cw
// and says which source address the listener saw.
func callerOf(t *testing.T, w *node, id string, port int) func(cw *node, client, addr string) (string, error) {
	t.Helper()
	var l net.Listener
	if err := inNetns(filepath.Join(w.dataDir, "network", "netns", id), func() error {
		var err error
		l, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	seen := make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			c.Close()
			seen <- host
		}
	}()
	return func(cw *node, client, addr string) (string, error) {
		if err := inContainer(cw, client, func() error {
			c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
			if err != nil {
				return err
			}
			return c.Close()
		}); err != nil {
			return "", err
		}
		select {
		case h := <-seen:
			return h, nil
		case <-time.After(2 * time.Second):
			return "", fmt.Errorf("%s: the listener saw no connection", addr)
		}
	}
}

// TestContainersSeeTheirCallers: a task on another worker sees the calling
// container's own address, whether called directly or through the
// service's VIP, on the node network and on an overlay network (no
// masquerade between containers).
func TestContainersSeeTheirCallers(t *testing.T) {
	c := newCluster(t, 2)
	w1, w2 := c.workers[0], c.workers[1]
	front := strings.TrimSpace(c.ctl("network", "create", "front"))
	c.ctl("service", "create", "--detach", "--name", "client", "--network", "front", "--constraint", "node.hostname=="+w1.name, "hello:latest", "-listen", ":80")
	c.ctl("service", "create", "--detach", "--name", "api", "--network", "front", "--constraint", "node.hostname=="+w2.name, "hello:latest", "-listen", ":80")
	clients := c.running("client", 1)
	api := c.running("api", 1)
	clientID, apiID := onlyTask(clients), onlyTask(api)
	call := callerOf(t, w2, apiID, 81)
	clientAddr, apiAddr := addrsOf(clients)[0], addrsOf(api)[0]
	clientOverlay, apiOverlay := overlayAddrs(clients, front)[0], overlayAddrs(api, front)[0]
	for _, tc := range []struct {
		name, to, want string
	}{
		{"node network, task address", apiAddr, clientAddr},
		{"node network, VIP", c.vip("api"), clientAddr},
		{"overlay, task address", apiOverlay, clientOverlay},
		{"overlay, VIP", c.overlayVIP("api", front), clientOverlay},
	} {
		var got string
		clustertest.Eventually(t, 10*time.Second, tc.name, func() (bool, string) {
			var err error
			got, err = call(w1, clientID, net.JoinHostPort(tc.to, "81"))
			return err == nil, fmt.Sprint(err)
		})
		if got != tc.want {
			t.Errorf("%s (%s): the task saw %s, want the client's %s", tc.name, tc.to, got, tc.want)
		}
	}
}
