package dispatcher

import (
	"net/netip"
	"slices"
	"strings"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// overlays is the overlay part of a node's network state: each network
// that a task on the node holds an address on (a task that is not
// terminal, whatever its desired state: a stopping container still uses
// its network), with
//   - peers: every live task on the network whose node is READY, with the
//     node's underlay address, the node's own tasks included (a dead
//     node's tasks drop out at once, so no worker keeps forwarding to
//     them);
//   - services: each service attached to the network, its VIP there and
//     the network addresses of its serving tasks, for DNS and VIP
//     balancing inside the network.
//
// Everything is ordered (networks and services by ID, peers by address),
// so an unchanged state fingerprints the same (networkVersion).
//
// For no node (nodeID ""), it is every network that has a live task
// anywhere: the cluster-wide state the sessions share (see netCache), from
// which forNode keeps the networks of one node's tasks.
func overlays(tx raftstore.ReadTx, nodeID string, ready map[string]bool) []*minkepb.OverlayNetwork {
	var needed map[string]bool
	if nodeID != "" {
		if needed = neededOverlays(tx.TasksByNode(nodeID)); len(needed) == 0 {
			return nil
		}
	}
	underlay := map[string]string{}
	var out []*minkepb.OverlayNetwork
	for _, n := range tx.Networks() {
		id := n.GetMeta().GetId()
		if needed != nil && !needed[id] || needed == nil && len(tx.LiveTasksOnNetwork(id)) == 0 {
			continue
		}
		ov := &minkepb.OverlayNetwork{Id: id, Name: n.GetSpec().GetName(), Subnet: n.GetSubnet(),
			Gateway: n.GetGateway(), Vni: n.GetVni()}
		seen := map[string]bool{}
		for _, t := range tx.LiveTasksOnNetwork(id) {
			tid, node := t.GetMeta().GetId(), t.GetNodeId()
			if seen[tid] || node == "" || !ready[node] {
				continue
			}
			seen[tid] = true
			addr, ok := underlay[node]
			if !ok {
				addr = nodeUnderlay(tx.Node(node))
				underlay[node] = addr
			}
			if addr == "" {
				continue
			}
			for _, a := range attachmentOn(t, id).GetAddresses() {
				ov.Peers = append(ov.Peers, &minkepb.OverlayPeer{TaskId: tid, Address: a, NodeAddr: addr, NodeId: node})
			}
		}
		slices.SortFunc(ov.Peers, func(a, b *minkepb.OverlayPeer) int {
			pa, _ := netip.ParsePrefix(a.GetAddress())
			pb, _ := netip.ParsePrefix(b.GetAddress())
			if c := pa.Addr().Compare(pb.Addr()); c != 0 {
				return c
			}
			return strings.Compare(a.GetTaskId(), b.GetTaskId())
		})
		for _, s := range tx.ServicesOnNetwork(id) {
			ov.Services = append(ov.Services, overlayRecord(tx, s, id, ready))
		}
		out = append(out, ov)
	}
	return out
}

// overlayRecord is a service's record on one overlay network.
func overlayRecord(tx raftstore.ReadTx, s *minkepb.Service, networkID string, ready map[string]bool) *minkepb.ServiceRecord {
	rec := &minkepb.ServiceRecord{Id: s.GetMeta().GetId(), Name: s.GetSpec().GetName()}
	for _, v := range s.GetEndpoint().GetVirtualIps() {
		if v.GetNetworkId() == networkID {
			if p, err := netip.ParsePrefix(v.GetAddr()); err == nil {
				rec.VirtualIp = p.Addr().String()
			}
		}
	}
	for _, cfg := range s.GetSpec().GetTask().GetNetworks() {
		if cfg.GetTarget() == networkID {
			rec.Aliases = append(rec.Aliases, cfg.GetAliases()...)
		}
	}
	for _, t := range tx.TasksByService(s.GetMeta().GetId()) {
		if !serving(t, ready) {
			continue
		}
		for _, a := range attachmentOn(t, networkID).GetAddresses() {
			if p, err := netip.ParsePrefix(a); err == nil {
				rec.Backends = append(rec.Backends, p.Addr().String())
			}
		}
	}
	slices.SortFunc(rec.Backends, func(a, b string) int {
		return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b))
	})
	return rec
}

// attachmentOn is a task's attachment to a network, or nil.
func attachmentOn(t *minkepb.Task, networkID string) *minkepb.NetworkAttachment {
	for _, att := range t.GetNetworks() {
		if att.GetNetworkId() == networkID {
			return att
		}
	}
	return nil
}

// nodeUnderlay is the address other nodes reach a node's VXLAN endpoint
// at: the address its routes use today (NodeStatus.addr).
func nodeUnderlay(n *minkepb.Node) string {
	a, err := netip.ParseAddr(n.GetStatus().GetAddr())
	if err != nil {
		return ""
	}
	return a.String()
}

// neededOverlays is the set of overlay networks one of a node's tasks
// holds an address on (a task that is not terminal, whatever its desired
// state: a stopping container still uses its network).
func neededOverlays(tasks []*minkepb.Task) map[string]bool {
	needed := map[string]bool{}
	for _, t := range tasks {
		if t.GetStatus().GetState() >= minkepb.TaskState_COMPLETE {
			continue
		}
		for _, att := range t.GetNetworks() {
			needed[att.GetNetworkId()] = true
		}
	}
	return needed
}

// assignments drops the tasks of a node that still wait for their overlay
// addresses (state NEW; a global service's tasks are bound to their node
// from creation): a worker would start one without its networks.
func assignments(tasks []*minkepb.Task) []*minkepb.Task {
	out := tasks[:0:0]
	for _, t := range tasks {
		if t.GetStatus().GetState() != minkepb.TaskState_NEW {
			out = append(out, t)
		}
	}
	return out
}
