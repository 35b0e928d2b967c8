//go:build linux

package ha

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/netharness"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/client"
)

// startWorker runs a worker on host i that joins m with token.
func (c *cluster) startWorker(i int, name, token string, m *mgr, more ...string) *netharness.Proc {
	c.t.Helper()
	host := c.h.Host(i)
	args := []string{"--data-dir", filepath.Join(c.dir, name), "--join", m.apiAddr(), "--advertise-addr", host.IP(), "--hostname", name}
	if token != "" {
		args = append(args, "--token", token)
	}
	return host.Start(name, workerBin, append(args, more...)...)
}

// nodeByName is the node with hostname name as m lists it, or nil.
func (c *cluster) nodeByName(m *mgr, name string) *minkepb.Node {
	nodes, err := c.nodes(m)
	if err != nil {
		return nil
	}
	for _, n := range nodes {
		if n.GetDescription().GetHostname() == name {
			return n
		}
	}
	return nil
}

func (c *cluster) waitNodeReady(m *mgr, name string) *minkepb.Node {
	c.t.Helper()
	var n *minkepb.Node
	c.eventually(readyTimeout, name+" READY", func() (bool, string) {
		n = c.nodeByName(m, name)
		return n.GetStatus().GetState() == minkepb.NodeStatus_READY, fmt.Sprintf("%s: %v", name, n.GetStatus())
	})
	return n
}

// nodeIDs is the sorted set of node IDs m lists: what a refused join or
// call must leave unchanged.
func (c *cluster) nodeIDs(m *mgr) []string {
	c.t.Helper()
	nodes, err := c.nodes(m)
	if err != nil {
		c.t.Fatalf("listing nodes: %v", err)
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.GetMeta().GetId())
	}
	slices.Sort(ids)
	return ids
}

// storeState is the part of the store refused calls must not change: node
// IDs and roles, services, and the cluster object's version.
func (c *cluster) storeState(m *mgr) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cl, _, err := c.client(m).GetCluster(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	svcs, _, err := c.client(m).ListServices(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	var names []string
	for _, s := range svcs {
		names = append(names, s.GetSpec().GetName())
	}
	slices.Sort(names)
	return fmt.Sprintf("nodes %v services %v cluster@%d", c.nodeIDs(m), names, cl.GetMeta().GetVersion())
}

// waitExit waits for a process that must refuse to run, and returns the
// log of its last run.
func waitExit(t *testing.T, p *netharness.Proc, bound time.Duration) string {
	t.Helper()
	if err := p.Wait(bound); err == nil || strings.Contains(err.Error(), "still running") {
		t.Fatalf("%s: %v (want a failed exit); log:\n%s", p.Name(), err, p.Log())
	}
	return p.Log()
}

// clusterCA reads the cluster's root CA (key included) from a backup, as
// only an operator with a manager's socket can: tests use it to make
// certificates the cluster must refuse.
func (c *cluster) clusterCA(m *mgr) *ca.RootCA {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	data, _, err := c.client(m).Backup(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	var snap minkepb.Snapshot
	if err := proto.Unmarshal(data, &snap); err != nil || len(snap.GetClusters()) != 1 {
		c.t.Fatalf("backup: %v", err)
	}
	root, err := ca.ClusterRoot(snap.GetClusters()[0])
	if err != nil {
		c.t.Fatal(err)
	}
	return root
}

// identity signs a certificate for subject/role with root, valid from
// notBefore for lifetime, trusting roots.
func identity(t *testing.T, root *ca.RootCA, subject, role string, notBefore time.Time, lifetime time.Duration, roots []byte) *ca.Identity {
	t.Helper()
	key, csr, err := ca.NewKeyAndCSR(subject)
	if err != nil {
		t.Fatal(err)
	}
	is, err := root.Sign(csr, subject, role, lifetime, notBefore)
	if err != nil {
		t.Fatal(err)
	}
	id := ca.NewIdentity("")
	if err := id.Set(key, is.ChainPEM, roots); err != nil {
		t.Fatal(err)
	}
	return id
}

// hostDialer dials from inside host's network namespace.
func hostDialer(h *netharness.Host) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) { return h.Dial(ctx, "tcp", addr) }
}

// grpcConn connects to addr from host with cfg.
func grpcConn(t *testing.T, h *netharness.Host, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithContextDialer(hostDialer(h)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// tcpClient is a Control client over TCP with the certificate in dir.
func tcpClient(t *testing.T, h *netharness.Host, addr, dir string) *client.Client {
	t.Helper()
	cl, err := client.Dial(context.Background(), "tcp://"+addr, client.WithTLSDir(dir), client.WithContextDialer(hostDialer(h)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// logHas waits until m's log contains every one of parts on one line.
func (c *cluster) logHas(m *mgr, parts ...string) {
	c.t.Helper()
	c.eventually(10*time.Second, fmt.Sprintf("%s logging %q", m.name(), parts), func() (bool, string) {
		for _, line := range strings.Split(m.proc.Log(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return true, ""
			}
		}
		return false, "no such line"
	})
}
