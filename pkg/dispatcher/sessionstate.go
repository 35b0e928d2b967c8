package dispatcher

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// sessionState is what a session has sent its worker, to which each new
// state of the store is compared: a message goes out only when something
// the worker acts on changed, and to a worker that merges deltas it holds
// only that.
//
// What counts, and what does not: the node's record without its status
// and metadata (role, spec), the manager token, the roots, the gossip
// keyring, the registries, each assigned task's ID with its desired
// state, and the network state. A change of observed status alone — the
// node's own task reports echoed back through the store, or the node
// being marked READY — asks nothing new, so it is not sent; this spares a
// worker its own status updates, which are most of the commits touching
// it.
type sessionState struct {
	nodeID string
	// deltas: the worker merges deltas (SessionRequest.deltas).
	deltas  bool
	started bool // the first, complete, message is built
	// node is the stored record nodeVersion was taken of: stored objects
	// are immutable, so the same pointer needs no new version.
	node                                      *minkepb.Node
	nodeVersion, managerToken                 string
	caVersion, keyringVersion, registriesList string
	// tasks are the assigned tasks' desired states, by task ID.
	tasks map[string]minkepb.TaskState
	// netVersion fingerprints the last complete network state (workers
	// without deltas).
	netVersion string
	// For workers with deltas: the generation of the cluster-wide state
	// the worker's network state is at, the node's own subnet then (to
	// which no route is sent), its endpoints and its overlay networks.
	netGen    uint64
	ownSubnet string
	endpoints map[string]*minkepb.Endpoint
	services  []string // serviceIDs of the node's tasks, of which endpoints are
	overlays  map[string]bool
}

// sessionMessage returns the next message of session s from tx, or nil
// when nothing the worker acts on changed since the last one; s then
// counts it as sent. The network state comes from the cluster-wide part
// cached for epoch (see netCache).
func (d *Dispatcher) sessionMessage(tx raftstore.ReadTx, s *sessionState, epoch uint64) *minkepb.SessionMessage {
	return d.nextMessage(tx, s, epoch).GetMsg()
}

// nextMessage is sessionMessage with the cluster-wide records it shares
// with other sessions' messages named, so that they are encoded once for
// all of them (see outgoing); nil when nothing changed.
func (d *Dispatcher) nextMessage(tx raftstore.ReadTx, s *sessionState, epoch uint64) *outgoing {
	n := readNode(tx, s.nodeID)
	node := n.node
	c := tx.Cluster()
	shared := d.net.get(tx, epoch)
	ci := d.cluster.get(c)
	tasks := assignments(n.tasks)
	var token string
	if node.GetSpec().GetDesiredRole() == minkepb.NodeRole_MANAGER && node.GetRole() != minkepb.NodeRole_MANAGER {
		token = c.GetJoinTokens().GetManager()
	}
	nodeVer := s.nodeVersion
	if !s.started || node != s.node {
		nodeVer = nodeVersion(node)
	}
	registries := strings.Join(shared.registries, ",")
	changedTasks, removedTasks := taskChanges(s.tasks, tasks)
	changed := !s.started || nodeVer != s.nodeVersion || token != s.managerToken || ci.caVersion != s.caVersion ||
		ci.keyringVersion != s.keyringVersion || registries != s.registriesList || len(changedTasks) > 0 || len(removedTasks) > 0
	var (
		netSt *minkepb.NetworkState
		netD  *minkepb.NetworkDelta
		sd    *sharedDelta
	)
	if s.deltas {
		netSt, netD, sd = s.network(tx, n, &d.net, shared)
	} else if st, v := forNode(tx, n, shared); v != s.netVersion {
		netSt, s.netVersion = st, v
	}
	if !changed && netSt == nil && netD == nil {
		return nil
	}
	msg := &minkepb.SessionMessage{ManagerToken: token, RegistryAddrs: shared.registries, Network: netSt, NetworkDelta: netD}
	if !s.deltas || !s.started {
		msg.Tasks, msg.Node = tasks, ownRecord(node)
		msg.CaCerts, msg.CaFingerprint, msg.GossipKeyring = ci.bundle, ci.fingerprint, ci.keyring
	} else {
		msg.TasksDelta, msg.Tasks, msg.RemovedTaskIds = true, changedTasks, removedTasks
		if nodeVer != s.nodeVersion {
			msg.Node = ownRecord(node)
		}
		if ci.caVersion != s.caVersion {
			msg.CaCerts, msg.CaFingerprint = ci.bundle, ci.fingerprint
		}
		if ci.keyringVersion != s.keyringVersion {
			msg.GossipKeyring = ci.keyring
		}
	}
	if !s.started || len(changedTasks) > 0 || len(removedTasks) > 0 {
		s.tasks = make(map[string]minkepb.TaskState, len(tasks))
		for _, t := range tasks {
			s.tasks[t.GetMeta().GetId()] = t.GetDesiredState()
		}
	}
	s.started, s.node, s.nodeVersion, s.managerToken = true, node, nodeVer, token
	s.caVersion, s.keyringVersion, s.registriesList = ci.caVersion, ci.keyringVersion, registries
	return &outgoing{msg: msg, state: shared, delta: sd}
}

// ownRecord is the node's record as its worker gets it: without the hash
// of its secret.
func ownRecord(n *minkepb.Node) *minkepb.Node {
	n = proto.Clone(n).(*minkepb.Node)
	n.SecretHash = nil
	return n
}

// nodeVersion identifies what a node's record asks of its worker: the
// record without its status and metadata.
func nodeVersion(n *minkepb.Node) string {
	n = proto.Clone(n).(*minkepb.Node)
	n.Status, n.Meta = nil, nil
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(n)
	return string(b)
}

// taskChanges compares a node's assignments with those sent (desired
// state by task ID): the tasks new to the worker or whose desired state
// changed, and the IDs of the sent tasks no longer assigned, in ID order.
func taskChanges(sent map[string]minkepb.TaskState, tasks []*minkepb.Task) (changed []*minkepb.Task, removed []string) {
	kept := 0
	for _, t := range tasks {
		desired, ok := sent[t.GetMeta().GetId()]
		if ok {
			kept++
		}
		if !ok || desired != t.GetDesiredState() {
			changed = append(changed, t)
		}
	}
	if kept == len(sent) {
		return changed, nil
	}
	now := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		now[t.GetMeta().GetId()] = true
	}
	for id := range sent {
		if !now[id] {
			removed = append(removed, id)
		}
	}
	slices.Sort(removed)
	return changed, removed
}

// network is the network part of the next message to a worker that
// merges deltas: the complete state for a new session (or one whose
// generation is no longer kept, or whose node changed its subnet), else
// the delta since the state it holds, nil when nothing changed, with the
// cluster-wide delta it is made of.
func (s *sessionState) network(tx raftstore.ReadTx, n nodeTasks, c *netCache, shared *sharedNet) (*minkepb.NetworkState, *minkepb.NetworkDelta, *sharedDelta) {
	own := ownSubnet(n.node)
	var (
		sd *sharedDelta
		ok bool
	)
	if s.started && own == s.ownSubnet {
		sd, ok = c.delta(s.netGen, shared)
	}
	if !ok {
		st, _ := forNode(tx, n, shared)
		s.netGen, s.ownSubnet, s.endpoints, s.overlays = shared.gen, own, st.GetEndpoints(), make(map[string]bool, len(st.GetOverlays()))
		s.services = serviceIDs(n.tasks)
		for _, ov := range st.GetOverlays() {
			s.overlays[ov.GetId()] = true
		}
		return st, nil, nil
	}
	nd := &minkepb.NetworkDelta{Ingress: sd.ingress, RemovedIngress: sd.removedIngress, Routes: sd.routes, RemovedRoutes: sd.removedRoutes,
		Services: sd.services, RemovedServices: sd.removedServices}
	isOwn := func(r *minkepb.NodeRoute) bool { return r.GetSubnet() == own }
	if own != "" && slices.ContainsFunc(nd.Routes, isOwn) {
		nd.Routes = slices.DeleteFunc(slices.Clone(nd.Routes), isOwn)
	}
	// Endpoints change with the services of the node's tasks (a new
	// generation) or with which services those are.
	eps, services := s.endpoints, serviceIDs(n.tasks)
	if shared.gen != s.netGen || !slices.Equal(services, s.services) {
		eps = nodeEndpoints(tx, n.tasks)
	}
	for id, ep := range eps {
		if s.endpoints[id] != ep { // stored objects are immutable: same pointer, same endpoint
			if nd.Endpoints == nil {
				nd.Endpoints = map[string]*minkepb.Endpoint{}
			}
			nd.Endpoints[id] = ep
		}
	}
	for id := range s.endpoints {
		if _, ok := eps[id]; !ok {
			nd.RemovedEndpoints = append(nd.RemovedEndpoints, id)
		}
	}
	slices.Sort(nd.RemovedEndpoints)
	if len(shared.overlays) > 0 || len(s.overlays) > 0 {
		now := map[string]bool{}
		for id := range neededOverlays(n.tasks) {
			if ov, ok := shared.overlays[id]; ok {
				now[id] = true
				if !s.overlays[id] || sd.overlays[id] {
					nd.Overlays = append(nd.Overlays, ov)
				}
			}
		}
		for id := range s.overlays {
			if !now[id] {
				nd.RemovedOverlays = append(nd.RemovedOverlays, id)
			}
		}
		slices.SortFunc(nd.Overlays, func(a, b *minkepb.OverlayNetwork) int { return strings.Compare(a.GetId(), b.GetId()) })
		slices.Sort(nd.RemovedOverlays)
		s.overlays = now
	}
	s.netGen, s.endpoints, s.services = shared.gen, eps, services
	if len(nd.Ingress)+len(nd.RemovedIngress)+len(nd.Routes)+len(nd.RemovedRoutes)+len(nd.Endpoints)+len(nd.RemovedEndpoints)+
		len(nd.Services)+len(nd.RemovedServices)+len(nd.Overlays)+len(nd.RemovedOverlays) == 0 {
		return nil, nil, nil
	}
	return nil, nd, sd
}

// serviceIDs are the IDs of the services of tasks, sorted, each once.
func serviceIDs(tasks []*minkepb.Task) []string {
	out := make([]string, 0, len(tasks))
	for _, t := range tasks {
		out = append(out, t.GetServiceId())
	}
	slices.Sort(out)
	return slices.Compact(out)
}
