package dispatcher

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/workerapi"
)

// netCache shares the cluster-wide part of the network state among all
// sessions. networkState reads every service's tasks, so computing it per
// session made each network-wide change (a service created, a node READY)
// cost sessions × tasks: at 5,000 nodes and 100,000 tasks that was most of
// the manager's CPU. The cluster-wide part is computed once per network
// epoch (bumped by the fan-out on every networkWide event, before it wakes
// the sessions) as networkState for no node; each session then takes out
// its own route and adds its own endpoints (see forNode).
//
// Each computation is a generation (sharedNet) that records which records
// changed since the one before, and the cache keeps the last netHistory
// generations, so that a session can send a worker only the records that
// changed since the generation it sent last (see sharedNet.delta): with
// whole states, every network-wide change cost each node the whole
// cluster's records, O(nodes × (nodes + services)) bytes per change.
type netCache struct {
	mu     sync.Mutex
	epoch  uint64
	recent []*sharedNet // oldest first; the last is the current one
	// cost and prevCost are how long the last two computations took (see
	// netWideDelay).
	cost, prevCost atomic.Int64
	// fanning adds up how long sessions took to build their messages
	// after a wake by a network-wide change; fanCost and prevFanCost are
	// its sums over the last two windows (see netWideDelay).
	fanning, fanCost, prevFanCost atomic.Int64
}

// netHistory is how many generations the cache keeps for deltas. A session
// that fell further behind (it could not build a message for that many
// network-wide changes) gets the whole state again.
const netHistory = 16

// sharedNet is one generation of the cluster-wide network state. Nothing
// in it changes once it is published; records equal to the previous
// generation's are the same pointers.
type sharedNet struct {
	encodedPart // of state's ingress ports and services, for new sessions (see outgoing)
	gen         uint64
	state       *minkepb.NetworkState // for no node: networkState(tx, "")
	version     string                // networkVersion(state)
	// registries are the managers' registries (see registryAddrs), read
	// with the nodes: they change only with a node record, which is a
	// network-wide change.
	registries []string
	// seen is what computing state read of the tasks, for the next
	// generation to reuse (see backendsSeen).
	seen *backendsSeen
	// The state's records by key (see NetworkDelta).
	ingress  map[string]*minkepb.IngressPort
	routes   map[string]*minkepb.NodeRoute
	services map[string]*minkepb.ServiceRecord
	overlays map[string]*minkepb.OverlayNetwork
	// changed are the keys whose records were added, changed or removed
	// since the previous generation.
	changed netKeys
	// deltas memoizes delta by the generation it starts from (under the
	// cache's mu): sessions move in step, so thousands of them ask for
	// the same one.
	deltas map[uint64]*sharedDelta
}

// netKeys are sets of record keys, by section of the network state.
type netKeys struct {
	ingress, routes, services, overlays map[string]bool
}

// netWideDelay is how long the fan-out lets network-wide changes gather
// before waking every session: ten times what the last change cost — the
// shared state's computation and every session's message after it — so
// that a burst of changes (1,000 services created at once, 5,000 nodes
// turning READY) costs one shared state and one message per session per
// window, and following changes takes at most about a tenth of a core;
// never more than netWideMaxDelay. In a small cluster it is a few
// milliseconds: ingress and DNS follow changes at once. With thousands of
// sessions, the sessions' part dominates (each wakes, reads the store and
// sends its delta): counting only the shared state woke every session
// every few milliseconds while services were being created.
//
// The smaller of the last two costs counts: one slow computation (a cold
// start, the process descheduled on a busy machine) must not hold the next
// change back by seconds in a small cluster.
//
// The fan-out calls it once per window, when a change arms it: what the
// sessions spent since the last call is the cost of the window before.
func (c *netCache) netWideDelay() time.Duration {
	c.prevFanCost.Store(c.fanCost.Swap(c.fanning.Swap(0)))
	cost := time.Duration(min(c.cost.Load(), c.prevCost.Load()) + min(c.fanCost.Load(), c.prevFanCost.Load()))
	return min(10*cost, netWideMaxDelay)
}

// netWideMaxDelay bounds netWideDelay: ingress backends, VIPs and DNS
// records must follow a task's end within a second (issue #7), so the
// gathering window leaves most of that second for the workers.
const netWideMaxDelay = 400 * time.Millisecond

// get returns the cluster-wide state for epoch, computing it from tx
// unless a state for that epoch, or a later one, is cached (a session that
// read the epoch just before it moved gets the newer state, rather than
// computing an older one again). tx must have been opened after epoch was
// read, so that it holds every change the epoch counts.
func (c *netCache) get(tx raftstore.ReadTx, epoch uint64) *sharedNet {
	c.mu.Lock()
	defer c.mu.Unlock()
	var prev *sharedNet
	if len(c.recent) > 0 {
		prev = c.recent[len(c.recent)-1]
		if c.epoch >= epoch {
			return prev
		}
	}
	began := time.Now()
	cur := newSharedNet(tx, prev)
	c.prevCost.Store(c.cost.Swap(int64(time.Since(began))))
	c.epoch = epoch
	if len(c.recent) == netHistory {
		c.recent[0] = nil
		c.recent = c.recent[1:]
	}
	c.recent = append(c.recent, cur)
	return cur
}

// newSharedNet computes the generation after prev (nil: the first) from
// tx.
func newSharedNet(tx raftstore.ReadTx, prev *sharedNet) *sharedNet {
	var prevSeen *backendsSeen
	if prev != nil {
		prevSeen = prev.seen
	}
	st, seen := networkStateAfter(tx, "", prevSeen)
	s := &sharedNet{gen: 1, state: st, seen: seen, registries: registryAddrs(tx), deltas: map[uint64]*sharedDelta{},
		ingress: make(map[string]*minkepb.IngressPort, len(st.GetIngress())), routes: make(map[string]*minkepb.NodeRoute, len(st.GetRoutes())),
		services: make(map[string]*minkepb.ServiceRecord, len(st.GetServices())), overlays: make(map[string]*minkepb.OverlayNetwork, len(st.GetOverlays())),
		changed: netKeys{ingress: map[string]bool{}, routes: map[string]bool{}, services: map[string]bool{}, overlays: map[string]bool{}}}
	old := &sharedNet{}
	if prev != nil {
		s.gen, old = prev.gen+1, prev
	}
	index(st.Ingress, s.ingress, old.ingress, s.changed.ingress, ingressKey, func(a, b *minkepb.IngressPort) bool { return proto.Equal(a, b) })
	index(st.Routes, s.routes, old.routes, s.changed.routes, (*minkepb.NodeRoute).GetSubnet, func(a, b *minkepb.NodeRoute) bool {
		return a.GetSubnet() == b.GetSubnet() && a.GetVia() == b.GetVia()
	})
	index(st.Services, s.services, old.services, s.changed.services, (*minkepb.ServiceRecord).GetId, sameRecord)
	index(st.Overlays, s.overlays, old.overlays, s.changed.overlays, (*minkepb.OverlayNetwork).GetId, func(a, b *minkepb.OverlayNetwork) bool {
		return proto.Equal(a, b)
	})
	s.version = networkVersion(st)
	return s
}

// index fills byKey from list, replacing each record equal to the
// previous generation's record of the same key by that record (so that
// unchanged records are shared between generations), and records in
// changed the keys added, changed or removed since.
func index[T any](list []T, byKey, old map[string]T, changed map[string]bool, key func(T) string, equal func(a, b T) bool) {
	for i, r := range list {
		k := key(r)
		if o, ok := old[k]; ok && equal(o, r) {
			list[i], r = o, o
		} else {
			changed[k] = true
		}
		byKey[k] = r
	}
	for k := range old {
		if _, ok := byKey[k]; !ok {
			changed[k] = true
		}
	}
}

func sameRecord(a, b *minkepb.ServiceRecord) bool {
	return a.GetId() == b.GetId() && a.GetName() == b.GetName() && a.GetVirtualIp() == b.GetVirtualIp() &&
		slices.Equal(a.GetBackends(), b.GetBackends()) && slices.Equal(a.GetAliases(), b.GetAliases())
}

// ingressKey identifies an ingress port in deltas: its protocol and
// published port, which no two services share.
func ingressKey(p *minkepb.IngressPort) string { return workerapi.IngressKey(p) }

// delta returns the changes from generation from to the generation of c,
// cur (the current one: its successors' records are not kept), or false
// when from is no longer kept.
func (c *netCache) delta(from uint64, cur *sharedNet) (*sharedDelta, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := cur.deltas[from]; ok {
		return d, true
	}
	var gens []*sharedNet
	for _, s := range c.recent {
		if s.gen > from && s.gen <= cur.gen {
			gens = append(gens, s)
		}
	}
	if from > cur.gen || uint64(len(gens)) != cur.gen-from {
		return nil, false
	}
	d := &sharedDelta{overlays: map[string]bool{}}
	ingress, routes, services := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range gens {
		for k := range s.changed.ingress {
			ingress[k] = true
		}
		for k := range s.changed.routes {
			routes[k] = true
		}
		for k := range s.changed.services {
			services[k] = true
		}
		for k := range s.changed.overlays {
			d.overlays[k] = true
		}
	}
	d.ingress, d.removedIngress = split(ingress, cur.ingress)
	d.routes, d.removedRoutes = split(routes, cur.routes)
	d.services, d.removedServices = split(services, cur.services)
	cur.deltas[from] = d
	return d, true
}

// split divides changed keys into the current records of those that have
// one and the removed rest, both ordered by key.
func split[T any](changed map[string]bool, byKey map[string]T) (upserts []T, removed []string) {
	keys := make([]string, 0, len(changed))
	for k := range changed {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if r, ok := byKey[k]; ok {
			upserts = append(upserts, r)
		} else {
			removed = append(removed, k)
		}
	}
	return upserts, removed
}

// sharedDelta is the cluster-wide change between two generations; each
// session adds its node's part (see nodeNet.delta). Shared and never
// changed.
type sharedDelta struct {
	encodedPart     // of the parts every session sends as they are (see outgoing)
	ingress         []*minkepb.IngressPort
	removedIngress  []string
	routes          []*minkepb.NodeRoute
	removedRoutes   []string
	services        []*minkepb.ServiceRecord
	removedServices []string
	// overlays are the IDs of the networks that changed or went away:
	// which of them a node holds is the session's to say.
	overlays map[string]bool
}

// nodeTasks is a node's record and all its tasks, read once for a
// session message.
type nodeTasks struct {
	id    string
	node  *minkepb.Node
	tasks []*minkepb.Task
}

func readNode(tx raftstore.ReadTx, nodeID string) nodeTasks {
	return nodeTasks{id: nodeID, node: tx.Node(nodeID), tasks: tx.TasksByNode(nodeID)}
}

// forNode is networkState(tx, n.id) built from shared, the state for no
// node: shared's routes without the one to the node's own container
// subnet, the endpoints of the services with tasks on the node, and the
// overlay networks its live tasks are attached to. Services and ingress
// ports are shared with the cached state, which nobody changes. The second
// result fingerprints the node's state (see networkVersion) without
// re-encoding the shared part.
func forNode(tx raftstore.ReadTx, n nodeTasks, shared *sharedNet) (*minkepb.NetworkState, string) {
	st := &minkepb.NetworkState{Endpoints: nodeEndpoints(tx, n.tasks), Services: shared.state.GetServices(),
		Ingress: shared.state.GetIngress(), Routes: shared.state.GetRoutes()}
	own := ownSubnet(n.node)
	_, filtered := shared.routes[own]
	if filtered {
		st.Routes = make([]*minkepb.NodeRoute, 0, len(shared.state.GetRoutes()))
		for _, r := range shared.state.GetRoutes() {
			if r.GetSubnet() != own {
				st.Routes = append(st.Routes, r)
			}
		}
	}
	if len(shared.state.GetOverlays()) > 0 {
		needed := neededOverlays(n.tasks)
		for _, ov := range shared.state.GetOverlays() {
			if needed[ov.GetId()] {
				st.Overlays = append(st.Overlays, ov)
			}
		}
	}
	mine := &minkepb.NetworkState{Endpoints: st.Endpoints}
	for _, ov := range st.Overlays { // which shared networks the node gets
		mine.Overlays = append(mine.Overlays, &minkepb.OverlayNetwork{Id: ov.GetId()})
	}
	if filtered {
		mine.Routes = []*minkepb.NodeRoute{{Subnet: own}}
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(mine)
	h := sha256.Sum256(b)
	return st, shared.version + "/" + hex.EncodeToString(h[:8])
}

// nodeEndpoints are the allocated endpoints of the services that have
// tasks (of a node), by service ID.
func nodeEndpoints(tx raftstore.ReadTx, tasks []*minkepb.Task) map[string]*minkepb.Endpoint {
	out := map[string]*minkepb.Endpoint{}
	seen := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		id := t.GetServiceId()
		if seen[id] {
			continue
		}
		seen[id] = true
		if ep := tx.Service(id).GetEndpoint(); ep != nil {
			out[id] = ep
		}
	}
	return out
}

// ownSubnet is n's container subnet (canonical form), to which n needs
// no route: its containers are on its own bridge. "" when it has none.
func ownSubnet(n *minkepb.Node) string {
	p, err := netip.ParsePrefix(n.GetDescription().GetContainerSubnet())
	if err != nil {
		return ""
	}
	return p.String()
}
