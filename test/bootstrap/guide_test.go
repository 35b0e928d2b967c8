//go:build linux

package bootstrap

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
	"github.com/minke-io/minke/pkg/ca"
)

// TestGuideBootstrap follows deploy/README.md, "Bootstrap 3 managers and N
// workers", on four network-namespace VMs: the first manager from
// first-manager.yaml, the join tokens from its swarmctl, two managers one at
// a time from manager.yaml, a worker from worker.yaml. It checks the cluster
// that results: three managers (a leader, two reachable), every node ready
// with a certificate from the cluster CA that the tokens pin, the join
// flags gone from the managers, and a manager restarted by its unit (now
// without --join) back in the cluster.
func TestGuideBootstrap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	h, dir := clustertest.NewHarness(t, 4, "boot")
	vms := make([]*vm, 4)
	for i := range vms {
		vms[i] = newVM(t, h.Host(i), filepath.Join(dir, fmt.Sprintf("vm%d", i)))
	}
	ip := func(i int) string { return h.Host(i).IP() }
	joinAddr := ip(0) + ":4242"

	// 1. First manager; then the tokens, on it.
	vms[0].boot(render(t, "first-manager.yaml", map[string]string{"MINKE_ADDR": ip(0)}))
	token := func(role string) string {
		out, err := vms[0].swarmctl("cluster", "join-token", role)
		if err != nil {
			t.Fatalf("join-token %s: %v\n%s", role, err, out)
		}
		tok := strings.TrimSpace(out)
		if !strings.HasPrefix(tok, "MKTKN-2-"+role+"-") {
			t.Fatalf("join-token %s printed %q", role, tok)
		}
		return tok
	}
	managerToken, workerToken := token("manager"), token("worker")

	// 2. Two more managers, one at a time: each is Reachable before the next.
	for i := 1; i <= 2; i++ {
		vms[i].boot(render(t, "manager.yaml", map[string]string{
			"MINKE_ADDR": ip(i), "MINKE_JOIN_ADDR": joinAddr, "MINKE_MANAGER_TOKEN": managerToken}))
		waitNodes(t, vms[0], fmt.Sprintf("manager %d Reachable", i), func(nodes []*minkepb.Node) (bool, string) {
			return reachable(nodes, ip(i)), summary(nodes)
		})
		if _, err := os.Stat(filepath.Join(vms[i].root, "etc/minke/manager-join.env")); !os.IsNotExist(err) {
			t.Errorf("vm%d: manager-join.env still there after the join (%v)", i, err)
		}
	}

	// 3. A worker.
	vms[3].boot(render(t, "worker.yaml", map[string]string{"MINKE_JOIN_ADDR": joinAddr, "MINKE_WORKER_TOKEN": workerToken}))

	// 4. node ls: three managers (one Leader, two Reachable), every node Ready.
	waitNodes(t, vms[0], "3 managers and a worker, all Ready", func(nodes []*minkepb.Node) (bool, string) {
		return clusterOK(nodes, 4, 3), summary(nodes)
	})

	// The CA that the tokens pin is the cluster's, and every node holds a
	// certificate from it, in 0600 files.
	out, err := vms[1].swarmctl("cluster", "inspect", "--format", "json")
	if err != nil {
		t.Fatalf("cluster inspect: %v\n%s", err, out)
	}
	var resp minkepb.GetClusterResponse
	if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("cluster inspect: %v\n%s", err, out)
	}
	st := resp.GetCaStatus()
	tok, err := ca.ParseToken(workerToken)
	if err != nil || fmt.Sprintf("%x", tok.CAHash) != st.GetFingerprint() || st.GetRenewed() != 4 || st.GetRotating() {
		t.Errorf("CA status %v does not match the token's CA %x (%v)", st, tok.CAHash, err)
	}
	if len(resp.GetCluster().GetRootCa().GetKey()) != 0 {
		t.Error("cluster inspect shows the root CA key")
	}
	for i, v := range vms {
		role := "manager"
		if i == 3 {
			role = "worker"
		}
		certs := filepath.Join(v.root, "var/lib/minke", role, "certs")
		for _, f := range []string{ca.CAFile, ca.CertFile, ca.KeyFile} {
			if fi, err := os.Stat(filepath.Join(certs, f)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("vm%d: %s: %v %v", i, f, fi, err)
			}
		}
		id, err := ca.LoadIdentity(certs)
		if err != nil || ca.PEMFingerprint(id.RootsPEM()) != st.GetFingerprint() || id.Peer().Role != role {
			t.Errorf("vm%d: certificate %+v (%v), want a %s certificate from CA %s", i, id.Peer(), err, role, st.GetFingerprint())
		}
	}

	// A joined manager restarted by its unit runs without the join flags.
	vms[1].restart("minke-manager")
	waitNodes(t, vms[0], "manager 1 back", func(nodes []*minkepb.Node) (bool, string) {
		return clusterOK(nodes, 4, 3), summary(nodes)
	})
	if strings.Contains(lastRun(vms[1].procs["minke-manager"].Log()), "--join") {
		t.Error("the restarted manager was started with --join")
	}
}

func lastRun(log string) string { return clustertest.LastRun(log) }

// waitNodes polls `swarmctl node ls` on v until cond holds.
func waitNodes(t *testing.T, v *vm, what string, cond func([]*minkepb.Node) (bool, string)) {
	t.Helper()
	clustertest.Eventually(t, 60*time.Second, what, func() (bool, string) {
		out, err := v.swarmctl("node", "ls", "--format", "json")
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, out)
		}
		var raw []json.RawMessage
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			return false, err.Error()
		}
		var nodes []*minkepb.Node
		for _, r := range raw {
			var n minkepb.Node
			if err := protojson.Unmarshal(r, &n); err != nil {
				return false, err.Error()
			}
			nodes = append(nodes, &n)
		}
		return cond(nodes)
	})
}

func reachable(nodes []*minkepb.Node, ip string) bool {
	for _, n := range nodes {
		if n.GetStatus().GetAddr() == ip && n.GetManagerStatus().GetReachability() == minkepb.ManagerStatus_REACHABLE {
			return true
		}
	}
	return false
}

func clusterOK(nodes []*minkepb.Node, total, managers int) bool {
	ready, mgrs, leaders, reach := 0, 0, 0, 0
	for _, n := range nodes {
		if n.GetStatus().GetState() == minkepb.NodeStatus_READY {
			ready++
		}
		if n.GetRole() == minkepb.NodeRole_MANAGER {
			mgrs++
			if n.GetManagerStatus().GetLeader() {
				leaders++
			}
			if n.GetManagerStatus().GetReachability() == minkepb.ManagerStatus_REACHABLE {
				reach++
			}
		}
	}
	return len(nodes) == total && ready == total && mgrs == managers && leaders == 1 && reach == managers
}

func summary(nodes []*minkepb.Node) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf("%s %v %v leader=%v %v", n.GetStatus().GetAddr(), n.GetRole(), n.GetStatus().GetState(),
			n.GetManagerStatus().GetLeader(), n.GetManagerStatus().GetReachability()))
	}
	return strings.Join(parts, "; ")
}
