package dispatcher

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// networkState is the part of the cluster's state a node programs into its
// kernel and DNS server: every service's name, VIP and the addresses of its
// running, healthy tasks on READY nodes, every ingress port with the same
// backends, routes to the other nodes' container subnets, and the
// endpoints of the services that have tasks on the node.
//
// Records are in key order (see NetworkDelta): services and overlays by
// ID, routes by subnet, ingress ports by IngressKey; a worker that merges
// deltas orders its copy the same way.
func networkState(tx raftstore.ReadTx, nodeID string) *minkepb.NetworkState {
	st, _ := networkStateAfter(tx, nodeID, nil)
	return st
}

// backendsSeen is what a computation of the network state read of the
// tasks: the READY nodes, and for each service the store's
// TasksChangedAt and the backends it found. A later computation from a
// store where both are the same reuses those backends instead of reading
// the service's tasks again: a service's backends depend on nothing else,
// and at 100,000 tasks each computation read them all, though a change
// rarely touches more than a few services.
type backendsSeen struct {
	ready    map[string]bool
	services map[string]serviceBackends
}

type serviceBackends struct {
	tasksChanged uint64
	backends     []string
}

// lookup returns what b saw of service id (b may be nil).
func (b *backendsSeen) lookup(id string) (serviceBackends, bool) {
	if b == nil {
		return serviceBackends{}, false
	}
	sb, ok := b.services[id]
	return sb, ok
}

// networkStateAfter is networkState, reusing what prev (nil: nothing)
// read where it still holds, and what it read itself.
func networkStateAfter(tx raftstore.ReadTx, nodeID string, prev *backendsSeen) (*minkepb.NetworkState, *backendsSeen) {
	st := &minkepb.NetworkState{Endpoints: map[string]*minkepb.Endpoint{}}
	ready := map[string]bool{}
	for _, n := range tx.Nodes() {
		if n.GetStatus().GetState() != minkepb.NodeStatus_READY {
			continue
		}
		ready[n.GetMeta().GetId()] = true
		if n.GetMeta().GetId() == nodeID {
			continue
		}
		subnet, err := netip.ParsePrefix(n.GetDescription().GetContainerSubnet())
		via, verr := netip.ParseAddr(n.GetStatus().GetAddr())
		if err != nil || verr != nil {
			continue
		}
		st.Routes = append(st.Routes, &minkepb.NodeRoute{Subnet: subnet.String(), Via: via.String()})
	}
	for _, t := range tx.TasksByNode(nodeID) {
		if ep := tx.Service(t.GetServiceId()).GetEndpoint(); ep != nil {
			st.Endpoints[t.GetServiceId()] = ep
		}
	}
	if prev != nil && !maps.Equal(prev.ready, ready) {
		prev = nil // a node's READY state changed: any backend may have too
	}
	services := tx.Services()
	seen := &backendsSeen{ready: ready, services: make(map[string]serviceBackends, len(services))}
	for _, s := range services {
		id := s.GetMeta().GetId()
		changed := tx.TasksChangedAt(id)
		var backends []string
		if old, ok := prev.lookup(id); ok && old.tasksChanged == changed {
			backends = old.backends
		} else if mayServe(tx.TaskCounts(id)) {
			for _, t := range tx.TasksByService(id) {
				if a, ok := backendAddr(t, ready); ok {
					backends = append(backends, a)
				}
			}
			slices.Sort(backends)
		}
		seen.services[id] = serviceBackends{tasksChanged: changed, backends: backends}
		st.Services = append(st.Services, &minkepb.ServiceRecord{Id: s.GetMeta().GetId(), Name: s.GetSpec().GetName(),
			VirtualIp: s.GetEndpoint().GetVirtualIp(), Backends: backends})
		for _, p := range s.GetEndpoint().GetPorts() {
			if p.GetPublishMode() == minkepb.PortConfig_INGRESS {
				st.Ingress = append(st.Ingress, &minkepb.IngressPort{Port: p, Backends: backends})
			}
		}
	}
	slices.SortFunc(st.Routes, func(a, b *minkepb.NodeRoute) int { return strings.Compare(a.GetSubnet(), b.GetSubnet()) })
	slices.SortFunc(st.Ingress, func(a, b *minkepb.IngressPort) int { return strings.Compare(ingressKey(a), ingressKey(b)) })
	st.Overlays = overlays(tx, nodeID, ready)
	return st, seen
}

// backendAddr is a task's container address when it should take
// connections: running and meant to run, on a READY node, and not
// unhealthy or still starting its healthcheck.
func backendAddr(t *minkepb.Task, readyNodes map[string]bool) (string, bool) {
	if !serving(t, readyNodes) {
		return "", false
	}
	p, err := netip.ParsePrefix(t.GetStatus().GetContainer().GetAddress())
	if err != nil {
		return "", false
	}
	return p.Addr().String(), true
}

// mayServe reports whether a service whose tasks the store counts as
// counts has any task that may be serving: one RUNNING and meant to run.
// A service without one has no backends, and its tasks are not read: the
// cluster-wide state reads every service's tasks each time it changes, and
// while services are being deployed most of theirs are not running yet.
// The counts must be a committed state's (a View's), where the store keeps
// them in step with the tasks.
func mayServe(counts map[raftstore.TaskCountKey]int) bool {
	for k, n := range counts {
		if n > 0 && k.State == minkepb.TaskState_RUNNING && k.Desired == minkepb.TaskState_RUNNING {
			return true
		}
	}
	return false
}

// serving reports whether a task should take connections: running and
// meant to run, on a READY node, and not unhealthy or still starting its
// healthcheck.
func serving(t *minkepb.Task, readyNodes map[string]bool) bool {
	s := t.GetStatus()
	if s.GetState() != minkepb.TaskState_RUNNING || t.GetDesiredState() != minkepb.TaskState_RUNNING || !readyNodes[t.GetNodeId()] {
		return false
	}
	switch s.GetContainer().GetHealth() {
	case minkepb.HealthState_UNHEALTHY, minkepb.HealthState_HEALTH_STARTING:
		return false
	}
	return true
}

// networkWide reports whether an event may change the network state of
// nodes other than the ones it names: a node (its READY state and subnet
// feed every node's routes and ingress backends), a service (its
// endpoint), or a task that has, or had, a container address (an ingress
// backend), or a task on an overlay network (a peer and a backend of
// every node on the network). Tasks without an address — most of them at scale, and all of a
// simulated worker's — wake only their own node's session.
func networkWide(ev raftstore.Event) bool {
	switch o := ev.Object.(type) {
	case *minkepb.Node, *minkepb.Service, *minkepb.Cluster, *minkepb.Network:
		return true // a Cluster change may change the gossip keyring
	case *minkepb.Task:
		// A task on an overlay network is a peer of every node on it, from
		// its creation (its address is allocated) to its removal.
		return o.GetStatus().GetContainer().GetAddress() != "" || len(o.GetNetworks()) > 0
	}
	return false
}

// urgentNetworkChange reports whether a network-wide event may take
// something away from every node's network state — a backend (a task
// that stopped running or serving, or was removed), a node's routes and
// backends (a node not READY), a service's or a network's records — as
// opposed to only adding to it (a service created, a task that started
// running, a node READY). Removals reach every node within
// netWideMaxDelay, or connections keep going to a task that is gone;
// additions may wait for the sessions' pace (see fanout.run).
func urgentNetworkChange(ev raftstore.Event) bool {
	if ev.Kind == raftstore.EventRemove {
		return true
	}
	switch o := ev.Object.(type) {
	case *minkepb.Task:
		st := o.GetStatus()
		switch {
		case st.GetState() > minkepb.TaskState_RUNNING, o.GetDesiredState() > minkepb.TaskState_RUNNING:
			return true
		case st.GetState() == minkepb.TaskState_RUNNING:
			h := st.GetContainer().GetHealth()
			return h == minkepb.HealthState_UNHEALTHY || h == minkepb.HealthState_HEALTH_STARTING
		}
		return false
	case *minkepb.Node:
		return o.GetStatus().GetState() != minkepb.NodeStatus_READY
	case *minkepb.Service:
		return ev.Kind != raftstore.EventCreate
	}
	return true // a cluster or network change: rare, and may remove
}

// networkVersion fingerprints a network state, so that an unchanged one is
// not sent again.
func networkVersion(st *minkepb.NetworkState) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(st)
	h := sha256.Sum256(b)
	return "net@" + hex.EncodeToString(h[:8])
}

// checkContainerSubnet refuses a joining node whose container subnet is
// invalid or overlaps another node's: workers route to each other's
// subnets, so an overlap would send one node's traffic to the other.
func checkContainerSubnet(tx raftstore.ReadTx, nodeID, subnet string) error {
	if subnet == "" {
		return nil
	}
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() || p.Masked() != p {
		return status.Errorf(codes.InvalidArgument, "container subnet %q: want an IPv4 network in CIDR form, such as 172.29.1.0/24", subnet)
	}
	for _, n := range tx.Nodes() {
		if n.GetMeta().GetId() == nodeID {
			continue
		}
		other, err := netip.ParsePrefix(n.GetDescription().GetContainerSubnet())
		if err == nil && other.Overlaps(p) {
			return status.Errorf(codes.AlreadyExists,
				"container subnet %s overlaps %s of node %s (%s): start this worker with another --container-subnet, or remove that node",
				p, other, n.GetMeta().GetId(), n.GetDescription().GetHostname())
		}
	}
	for _, nw := range tx.Networks() {
		other, err := netip.ParsePrefix(nw.GetSubnet())
		if err == nil && other.Overlaps(p) {
			return status.Errorf(codes.AlreadyExists,
				"container subnet %s overlaps %s of overlay network %q: start this worker with another --container-subnet",
				p, other, nw.GetSpec().GetName())
		}
	}
	return nil
}
