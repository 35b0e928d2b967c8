package agent

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/network"
	"github.com/minke-io/minke/pkg/runtime"
	"github.com/minke-io/minke/pkg/workerapi"
)

// NoNetwork as WorkerConfig.ContainerSubnet turns container networking
// off: each container gets an empty network namespace with only lo.
const NoNetwork = "none"

// agentNet connects the agent's tasks to the node's bridge network and
// programs the cluster's network state (ingress ports, routes) the
// managers send with every assignment set. A nil *agentNet does nothing.
type agentNet struct {
	mgr   *network.Manager
	ov    *network.Overlays // nil: no overlay networks (ovErr says why)
	ovErr error
	dns   *network.DNSServer // nil: containers use the node's resolvers
	log   *slog.Logger

	mu        sync.Mutex
	endpoints map[string]*minkepb.Endpoint // by service ID
	clients   map[string]netip.Addr        // container ID -> address its DNS queries come from
}

// resolveSubnet turns WorkerConfig.ContainerSubnet into a prefix: "" is
// network.DefaultSubnet of the node's address, NoNetwork is none.
func resolveSubnet(flag, nodeAddr string) (netip.Prefix, error) {
	switch flag {
	case NoNetwork:
		return netip.Prefix{}, nil
	case "":
		a, err := netip.ParseAddr(nodeAddr)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("worker: container subnet: node address %q: %w", nodeAddr, err)
		}
		return network.DefaultSubnet(a), nil
	}
	p, err := netip.ParsePrefix(flag)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: --container-subnet %q: want an IPv4 CIDR such as 172.29.1.0/24, or %q", network.ErrInvalid, flag, NoNetwork)
	}
	if err := network.ValidateSubnet(p); err != nil {
		return netip.Prefix{}, fmt.Errorf("--container-subnet: %w", err)
	}
	return p, nil
}

// defaultBridge names a node's bridge (and nftables table) after its ID,
// so that nodes of different clusters sharing a machine (tests, demos)
// never share one.
func defaultBridge(nodeID string) string {
	if len(nodeID) > 9 {
		nodeID = nodeID[:9]
	}
	return "minke-" + nodeID
}

// startNetwork creates the node's bridge network and overlay networks
// (VXLAN from nodeAddr), and removes what an earlier worker process left,
// except the networks of the containers in keep (re-adopted ones, whose
// runners adopt their networks).
func startNetwork(subnet netip.Prefix, bridge, nodeID, nodeAddr, dataDir string, keep map[string]bool, log *slog.Logger) (*agentNet, error) {
	if !subnet.IsValid() {
		return nil, nil
	}
	if bridge == "" {
		bridge = defaultBridge(nodeID)
	}
	m, err := network.New(network.Config{Subnet: subnet, Bridge: bridge, StateDir: filepath.Join(dataDir, "network"),
		ServicePool: workerapi.VIPPool, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("worker: container network: %w", err)
	}
	if err := m.Sweep(keep); err != nil {
		return nil, fmt.Errorf("worker: container network: %w", err)
	}
	n := &agentNet{mgr: m, log: log.With("component", "agent"), endpoints: map[string]*minkepb.Endpoint{}, clients: map[string]netip.Addr{}}
	n.startOverlays(nodeAddr, dataDir, keep)
	// The DNS server listens on the gateway, which every container reaches.
	host, _ := os.ReadFile("/etc/resolv.conf")
	dns := network.NewDNSServer(network.Upstreams(host), log)
	if err := dns.ListenAndServe(net.JoinHostPort(m.Gateway().String(), "53")); err != nil {
		n.log.Warn("no DNS server for containers: service names will not resolve", "err", err)
	} else {
		n.dns = dns
	}
	return n, nil
}

// apply programs the cluster's network state. Failures are logged: the
// next assignment set retries.
func (n *agentNet) apply(st *minkepb.NetworkState) {
	if n == nil || st == nil {
		return
	}
	n.mu.Lock()
	n.endpoints = st.GetEndpoints()
	n.mu.Unlock()
	var rules []network.IngressRule
	for _, ip := range st.GetIngress() {
		r := network.IngressRule{Protocol: protocolOf(ip.GetPort()), Published: uint16(ip.GetPort().GetPublishedPort()), Target: uint16(ip.GetPort().GetTargetPort())}
		for _, b := range ip.GetBackends() {
			if a, err := netip.ParseAddr(b); err == nil && a.Is4() {
				r.Backends = append(r.Backends, a)
			}
		}
		rules = append(rules, r)
	}
	if err := n.mgr.SetIngress(rules); err != nil {
		n.log.Warn("programming ingress ports failed", "err", err)
	}
	var vips []network.VIPRule
	var records []network.DNSRecord
	for _, s := range st.GetServices() {
		r := network.DNSRecord{Name: s.GetName()}
		for _, b := range s.GetBackends() {
			if a, err := netip.ParseAddr(b); err == nil && a.Is4() {
				r.Backends = append(r.Backends, a)
			}
		}
		if vip, err := netip.ParseAddr(s.GetVirtualIp()); err == nil {
			r.VIP = vip
			vips = append(vips, network.VIPRule{VIP: vip, Backends: r.Backends})
		}
		records = append(records, r)
	}
	if err := n.mgr.SetVIPs(vips); err != nil {
		n.log.Warn("programming service VIPs failed", "err", err)
	}
	if n.dns != nil {
		n.dns.Update(records)
	}
	n.applyOverlays(st)
	var routes []network.Route
	for _, r := range st.GetRoutes() {
		p, perr := netip.ParsePrefix(r.GetSubnet())
		via, verr := netip.ParseAddr(r.GetVia())
		if perr == nil && verr == nil {
			routes = append(routes, network.Route{Subnet: p, Via: via})
		}
	}
	if err := n.mgr.SetRoutes(routes); err != nil {
		n.log.Warn("programming routes to other nodes failed", "err", err)
	}
}

func protocolOf(p *minkepb.PortConfig) network.Protocol {
	if p.GetProtocol() == minkepb.PortConfig_UDP {
		return network.UDP
	}
	return network.TCP
}

// hostPorts are the host-mode ports of t's service.
func (n *agentNet) hostPorts(t *minkepb.Task) []network.PortMapping {
	n.mu.Lock()
	ep := n.endpoints[t.GetServiceId()]
	n.mu.Unlock()
	var out []network.PortMapping
	for _, p := range ep.GetPorts() {
		if p.GetPublishMode() == minkepb.PortConfig_HOST {
			out = append(out, network.PortMapping{Protocol: protocolOf(p), Published: uint16(p.GetPublishedPort()), Target: uint16(p.GetTargetPort())})
		}
	}
	return out
}

// attach creates the task's network namespace and veth before the
// container is created, and points spec at the namespace.
func (n *agentNet) attach(t *minkepb.Task, spec *runtime.ContainerSpec) (*network.Endpoint, error) {
	if n == nil {
		return nil, nil
	}
	ep, err := n.mgr.Attach(spec.ID, n.hostPorts(t))
	if err != nil {
		return nil, err
	}
	if err := n.attachOverlays(t, ep, false); err != nil {
		n.detach(spec.ID)
		return nil, err
	}
	spec.NetNSPath = ep.NetNSPath
	// The runtime writes /etc/hosts and /etc/resolv.conf from the spec:
	// the container's own name on its address, and the node's DNS server
	// unless the spec names servers of its own.
	own := []string{ep.Addr.Addr().String() + " " + runtime.Hostname(spec.ID)}
	atts, _ := overlayAttachments(t) // attached above, so valid
	for _, at := range atts {
		own = append(own, at.Addr.Addr().String()+" "+runtime.Hostname(spec.ID))
	}
	spec.ExtraHosts = append(own, spec.ExtraHosts...)
	if n.dns != nil && len(spec.DNSServers) == 0 {
		spec.DNSServers = []string{n.mgr.Gateway().String()}
	}
	return ep, nil
}

// adopt takes over the network of a container a previous worker process
// attached (see network.Manager.Adopt).
func (n *agentNet) adopt(t *minkepb.Task, id string) (*network.Endpoint, error) {
	if n == nil {
		return nil, nil
	}
	ep, err := n.mgr.Adopt(id, n.hostPorts(t))
	if err != nil {
		return nil, err
	}
	return ep, n.attachOverlays(t, ep, true)
}

// stop removes the node's network (bridge, nftables table, routes) when
// no container is left on it; running containers keep theirs.
func (n *agentNet) stop() {
	if n == nil {
		return
	}
	if n.dns != nil {
		n.dns.Close()
	}
	if err := n.stopOverlays(); err != nil {
		n.log.Warn("removing the node's overlay networks failed", "err", err)
	}
	if n.mgr.Attached() > 0 {
		return
	}
	if err := n.mgr.Close(); err != nil {
		n.log.Warn("removing the node's network failed", "err", err)
	}
}

// detach removes a task's network; a task never attached is no error.
func (n *agentNet) detach(id string) {
	if n == nil {
		return
	}
	if err := n.detachOverlays(id); err != nil {
		n.log.Warn("removing container overlay links failed", "task_id", id, "err", err)
	}
	if err := n.mgr.Detach(id); err != nil {
		n.log.Warn("removing container network failed", "task_id", id, "err", err)
	}
}

// address is the endpoint's address for status reports.
func address(ep *network.Endpoint) string {
	if ep == nil {
		return ""
	}
	return ep.Addr.String()
}
