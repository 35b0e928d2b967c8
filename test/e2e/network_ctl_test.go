//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
)

// TestNetworkControlPlane drives `swarmctl network` and `--network` through
// a real manager: networks get subnets, gateways and VNIs; a service's
// tasks get an address on each network it attaches to and the service a
// VIP there; bad input is refused with one line naming what is wrong and
// changes nothing; a network in use cannot be removed until nothing uses
// it. (Whether the worker programs the overlay is test/network's
// business: this test looks only at what the managers store.)
func TestNetworkControlPlane(t *testing.T) {
	c := NewCluster(t)
	c.StartManager("m1", ManagerOptions{Worker: true})
	c.PushHello()

	frontID := strings.TrimSpace(c.MustCtl("network", "create", "front"))
	c.MustCtl("network", "create", "--subnet", "10.20.0.0/24", "--gateway", "10.20.0.254", "--label", "tier=db", "back")
	ls := c.MustCtl("network", "ls")
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(ls), "\n") {
		rows = append(rows, strings.Join(strings.Fields(line), " "))
	}
	for _, want := range []string{frontID[:12] + " front overlay 10.10.0.0/24 10.10.0.1 4096",
		" back overlay 10.20.0.0/24 10.20.0.254 4097"} {
		if !strings.Contains(strings.Join(rows, "\n"), want) {
			t.Fatalf("network ls does not show %q:\n%s", want, ls)
		}
	}
	nets := networks(t, c)
	back := nets["back"]
	if back.GetSpec().GetLabels()["tier"] != "db" || back.GetSpec().GetDriver() != "overlay" {
		t.Fatalf("back as stored: %v", back)
	}

	c.MustCtl("service", "create", "--detach", "--name", "web", "--replicas", "3",
		"--network", "front", "--network", "name=back,alias=www", "hello:latest")

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr []string
	}{
		{"invalid CIDR", []string{"network", "create", "--subnet", "10.30.0.0/33", "x"}, []string{`subnet "10.30.0.0/33"`, "CIDR"}},
		{"host bits in the subnet", []string{"network", "create", "--subnet", "10.30.0.7/24", "x"}, []string{"10.30.0.0/24"}},
		{"overlapping subnet", []string{"network", "create", "--subnet", "10.20.0.128/25", "x"}, []string{"overlaps 10.20.0.0/24", `network "back"`}},
		{"overlapping a worker's containers", []string{"network", "create", "--subnet", "172.29.0.0/16", "x"}, []string{"overlaps", "container subnet", "of node"}},
		{"name in use", []string{"network", "create", "front"}, []string{`"front"`, "already exists"}},
		{"invalid name", []string{"network", "create", "no/slash"}, []string{`invalid name "no/slash"`}},
		{"gateway outside the subnet", []string{"network", "create", "--subnet", "10.30.0.0/24", "--gateway", "10.31.0.1", "x"}, []string{"gateway 10.31.0.1", "10.30.0.0/24"}},
		{"unknown network on a service", []string{"service", "create", "--detach", "--name", "api", "--network", "nosuch", "hello:latest"},
			[]string{"task.networks[0]", `"nosuch" not found`, "back, front"}},
		{"duplicate network on a service", []string{"service", "create", "--detach", "--name", "api", "--network", "front", "--network", frontID[:10], "hello:latest"},
			[]string{"task.networks[1]", "front", "already attached"}},
		{"unknown network on update", []string{"service", "update", "--detach", "--network-add", "nosuch", "web"}, []string{`"nosuch"`, "not found"}},
		{"removing a network in use", []string{"network", "rm", "front"}, []string{"front", "in use", "web"}},
		{"removing an unknown network", []string{"network", "rm", "nosuch"}, []string{"nosuch", "not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.With(t)
			beforeNets := c.MustCtl("network", "ls", "--format", "json")
			beforeSvcs := serviceSpecs(t, c)
			r := c.Ctl(tc.args...)
			t.Logf("swarmctl %s: %s", strings.Join(tc.args, " "), r.Stderr)
			checkOneLineError(t, r.Code, r.Stderr, tc.wantErr...)
			if after := c.MustCtl("network", "ls", "--format", "json"); after != beforeNets {
				t.Errorf("networks changed:\nbefore: %s\nafter:  %s", beforeNets, after)
			}
			if after := serviceSpecs(t, c); after != beforeSvcs {
				t.Errorf("services changed:\nbefore: %s\nafter:  %s", beforeSvcs, after)
			}
		})
	}

	// Every task of web holds an address on both networks, no two alike,
	// and the service has a VIP on each.
	subnet := map[string]netip.Prefix{}
	for _, n := range nets {
		subnet[n.GetMeta().GetId()] = netip.MustParsePrefix(n.GetSubnet())
	}
	c.Eventually(30*time.Second, "3 tasks of web with addresses on front and back", func() (bool, string) {
		held := map[string]string{}
		live := 0
		for _, task := range c.Tasks("web") {
			if task.GetStatus().GetState() >= minkepb.TaskState_COMPLETE {
				continue
			}
			live++
			if len(task.GetNetworks()) != 2 {
				return false, fmt.Sprintf("task %s attachments %v", task.GetMeta().GetId(), task.GetNetworks())
			}
			for _, att := range task.GetNetworks() {
				p, err := netip.ParsePrefix(att.GetAddresses()[0])
				if err != nil || !subnet[att.GetNetworkId()].Contains(p.Addr()) {
					t.Fatalf("task %s has %q on %s (%s)", task.GetMeta().GetId(), att.GetAddresses(), att.GetNetworkId(), subnet[att.GetNetworkId()])
				}
				key := att.GetNetworkId() + p.Addr().String()
				if other, dup := held[key]; dup {
					t.Fatalf("%s on %s held by tasks %s and %s", p.Addr(), att.GetNetworkId(), other, task.GetMeta().GetId())
				}
				held[key] = task.GetMeta().GetId()
			}
		}
		return live == 3, fmt.Sprintf("%d live tasks", live)
	})
	web := service(t, c, "web")
	if vips := web.GetEndpoint().GetVirtualIps(); len(vips) != 2 {
		t.Fatalf("web's VIPs: %v", vips)
	}
	if nw := web.GetSpec().GetTask().GetNetworks(); nw[0].GetTarget() != frontID || nw[1].GetAliases()[0] != "www" {
		t.Fatalf("web's networks are stored as %v, want IDs (front %s) and the alias", nw, frontID)
	}
	var inspect []struct {
		Subnet   string   `json:"subnet"`
		Services []string `json:"services"`
	}
	if err := json.Unmarshal([]byte(c.MustCtl("network", "inspect", "front")), &inspect); err != nil ||
		len(inspect) != 1 || inspect[0].Subnet != "10.10.0.0/24" || strings.Join(inspect[0].Services, ",") != "web" {
		t.Fatalf("network inspect front: %v %v", inspect, err)
	}

	// Take web off front: its tasks are replaced by ones without a front
	// address; front can go once the old ones have stopped.
	c.MustCtl("service", "update", "--detach", "--network-rm", "front", "web")
	if vips := service(t, c, "web").GetEndpoint().GetVirtualIps(); len(vips) != 1 || vips[0].GetNetworkId() != back.GetMeta().GetId() {
		t.Fatalf("web's VIPs after --network-rm front: %v", vips)
	}
	c.Eventually(60*time.Second, "network rm front once web's old tasks stopped", func() (bool, string) {
		r := c.Ctl("network", "rm", "front")
		return r.Code == 0, r.Stderr
	})
	c.MustCtl("service", "rm", "web")
	c.Eventually(60*time.Second, "network rm back once web is gone", func() (bool, string) {
		r := c.Ctl("network", "rm", "back")
		return r.Code == 0, r.Stderr
	})
	if ls := c.MustCtl("network", "ls", "-q"); ls != "" {
		t.Fatalf("networks left: %q", ls)
	}

	// A full network: a /29 holds the gateway, web's VIP and 4 tasks; the
	// 5th and 6th tasks wait, unscheduled and saying why, and the waiting
	// ones go when the service is scaled down to what fits.
	c.MustCtl("network", "create", "--subnet", "10.40.0.0/29", "tiny")
	c.MustCtl("service", "create", "--detach", "--name", "six", "--replicas", "6", "--network", "tiny", "hello:latest")
	c.Eventually(30*time.Second, "4 tasks of six attached and 2 waiting for an address", func() (bool, string) {
		attached, waiting := 0, 0
		for _, task := range c.Tasks("six") {
			switch {
			case task.GetDesiredState() != minkepb.TaskState_RUNNING:
			case task.GetStatus().GetState() == minkepb.TaskState_NEW:
				if task.GetNodeId() != "" || !strings.Contains(task.GetStatus().GetMessage(), `no free address on network "tiny" (10.40.0.0/29)`) {
					t.Fatalf("waiting task: %v", task)
				}
				waiting++
			case len(task.GetNetworks()) == 1:
				attached++
			}
		}
		return attached == 4 && waiting == 2, fmt.Sprintf("%d attached, %d waiting", attached, waiting)
	})
	c.MustCtl("service", "scale", "--detach", "six=4")
	c.Eventually(30*time.Second, "no task of six waiting after scaling to 4", func() (bool, string) {
		for _, task := range c.Tasks("six") {
			if task.GetStatus().GetState() == minkepb.TaskState_NEW {
				return false, "task " + task.GetMeta().GetId() + " still waiting"
			}
		}
		return true, ""
	})
	c.MustCtl("service", "rm", "six")
	c.Eventually(60*time.Second, "network rm tiny once six is gone", func() (bool, string) {
		r := c.Ctl("network", "rm", "tiny")
		return r.Code == 0, r.Stderr
	})
}

func networks(t *testing.T, c *Cluster) map[string]*minkepb.Network {
	t.Helper()
	list, err := clustertest.DecodeArray(c.MustCtl("network", "ls", "--format", "json"), func() *minkepb.Network { return new(minkepb.Network) })
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*minkepb.Network{}
	for _, n := range list {
		out[n.GetSpec().GetName()] = n
	}
	return out
}

func service(t *testing.T, c *Cluster, name string) *minkepb.Service {
	t.Helper()
	list, err := clustertest.DecodeArray(c.MustCtl("service", "inspect", name, "--format", "json"), func() *minkepb.Service { return new(minkepb.Service) })
	if err != nil || len(list) != 1 {
		t.Fatalf("service inspect %s: %v %v", name, list, err)
	}
	return list[0]
}

// serviceSpecs is every service's name, version and spec: what a refused
// command must leave alone.
func serviceSpecs(t *testing.T, c *Cluster) string {
	t.Helper()
	list, err := clustertest.DecodeArray(c.MustCtl("service", "ls", "--format", "json"), func() *minkepb.Service { return new(minkepb.Service) })
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range list {
		fmt.Fprintf(&b, "%s@%d %v;", s.GetSpec().GetName(), s.GetMeta().GetVersion(), s.GetSpec())
	}
	return b.String()
}
