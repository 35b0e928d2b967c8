package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/network"
)

// startOverlays prepares the node's overlay networks (VXLAN from nodeAddr)
// and removes what an earlier worker process left, except the links of the
// containers in keep. A node without a usable address runs without
// overlays: its tasks on overlay networks are rejected with the reason.
func (n *agentNet) startOverlays(nodeAddr, dataDir string, keep map[string]bool) {
	a, err := netip.ParseAddr(nodeAddr)
	if err == nil && !a.Is4() {
		err = fmt.Errorf("%s is not IPv4", a)
	}
	if err == nil {
		n.ov, err = network.NewOverlays(network.OverlayConfig{StateDir: filepath.Join(dataDir, "network"), LocalAddr: a, Logger: n.log})
	}
	if err == nil {
		err = n.ov.Sweep(keep)
	}
	if err != nil {
		n.ovErr = fmt.Errorf("overlay networks unavailable on this node (address %q): %w", nodeAddr, err)
		n.log.Warn("no overlay networks on this node", "err", n.ovErr)
	}
}

// applyOverlays programs the overlay networks' peers and VIPs, then gives
// the DNS server their records: in that order, so that a name never
// resolves to a state the data plane has not reached (a task removed from
// tasks.NAME is out of the VIP's backends already).
func (n *agentNet) applyOverlays(st *minkepb.NetworkState) {
	nets, records := overlayNetworks(st.GetOverlays())
	if n.ov != nil {
		if err := n.ov.Set(nets); err != nil {
			n.log.Warn("programming overlay networks failed", "err", err)
		}
	}
	if n.dns != nil {
		n.dns.UpdateNetworks(records)
	}
}

// overlayNetworks converts the managers' overlay state; unparsable entries
// are skipped (Overlays.Set refuses invalid networks with the reason).
func overlayNetworks(in []*minkepb.OverlayNetwork) ([]network.OverlayNetwork, map[string][]network.DNSRecord) {
	nets := make([]network.OverlayNetwork, 0, len(in))
	records := make(map[string][]network.DNSRecord, len(in))
	for _, o := range in {
		subnet, _ := netip.ParsePrefix(o.GetSubnet())
		gw, _ := network.ParseAddrOrPrefix(o.GetGateway())
		n := network.OverlayNetwork{ID: o.GetId(), Name: o.GetName(), Subnet: subnet, Gateway: gw, VNI: o.GetVni()}
		for _, p := range o.GetPeers() {
			a, aerr := network.ParseAddrOrPrefix(p.GetAddress())
			via, verr := network.ParseAddrOrPrefix(p.GetNodeAddr())
			if aerr == nil && verr == nil && a.Is4() && via.Is4() {
				n.Peers = append(n.Peers, network.OverlayPeer{Addr: a, NodeAddr: via})
			}
		}
		for _, s := range o.GetServices() {
			r := network.DNSRecord{Name: s.GetName(), Aliases: s.GetAliases(), Backends: addrs(s.GetBackends())}
			if vip, err := network.ParseAddrOrPrefix(s.GetVirtualIp()); err == nil && vip.Is4() {
				r.VIP = vip
				n.VIPs = append(n.VIPs, network.VIPRule{VIP: vip, Backends: r.Backends})
			}
			records[o.GetId()] = append(records[o.GetId()], r)
		}
		nets = append(nets, n)
	}
	return nets, records
}

func addrs(in []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range in {
		if a, err := network.ParseAddrOrPrefix(s); err == nil && a.Is4() {
			out = append(out, a)
		}
	}
	return out
}

// overlayAttachments are t's overlay addresses, in the task's order.
func overlayAttachments(t *minkepb.Task) ([]network.OverlayAttachment, error) {
	var out []network.OverlayAttachment
	for _, na := range t.GetNetworks() {
		if len(na.GetAddresses()) == 0 {
			return nil, fmt.Errorf("%w: task %s: network %s has no address allocated", network.ErrInvalid, t.GetMeta().GetId(), na.GetNetworkId())
		}
		p, err := netip.ParsePrefix(na.GetAddresses()[0])
		if err != nil {
			return nil, fmt.Errorf("%w: task %s: network %s: address %q: want CIDR", network.ErrInvalid, t.GetMeta().GetId(), na.GetNetworkId(), na.GetAddresses()[0])
		}
		out = append(out, network.OverlayAttachment{NetworkID: na.GetNetworkId(), Addr: p})
	}
	return out, nil
}

// attachOverlays connects the container to its task's overlay networks
// and scopes its DNS queries (from ep's address) to them.
func (n *agentNet) attachOverlays(t *minkepb.Task, ep *network.Endpoint, adopt bool) error {
	atts, err := overlayAttachments(t)
	if err != nil || len(atts) == 0 {
		return err
	}
	if n.ov == nil {
		return n.ovErr
	}
	if adopt {
		err = n.ov.Adopt(ep.ID, ep.NetNSPath, atts)
	} else {
		err = n.ov.Attach(ep.ID, ep.NetNSPath, atts)
	}
	if err != nil {
		return err
	}
	if n.dns != nil {
		ids := make([]string, len(atts))
		for i, a := range atts {
			ids[i] = a.NetworkID
		}
		n.dns.SetClient(ep.Addr.Addr(), ids)
		n.mu.Lock()
		n.clients[ep.ID] = ep.Addr.Addr()
		n.mu.Unlock()
	}
	return nil
}

// detachOverlays removes the container's overlay links (and a network's
// namespace when it was the last here) and its DNS scope.
func (n *agentNet) detachOverlays(id string) error {
	n.mu.Lock()
	client, ok := n.clients[id]
	delete(n.clients, id)
	n.mu.Unlock()
	if ok && n.dns != nil {
		n.dns.SetClient(client, nil)
	}
	if n.ov == nil {
		return nil
	}
	return n.ov.Detach(id)
}

// stopOverlays removes the node's overlay networks when no container is
// left on them.
func (n *agentNet) stopOverlays() error {
	if n.ov == nil || n.ov.Attached() > 0 {
		return nil
	}
	return errors.Join(n.ov.Close())
}
