package dispatcher

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// netCache shares the cluster-wide part of the network state among all
// sessions. networkState reads every service's tasks, so computing it per
// session made each network-wide change (a service created, a node READY)
// cost sessions × tasks: at 5,000 nodes and 100,000 tasks that was most of
// the manager's CPU. The cluster-wide part is computed once per network
// epoch (bumped by the fan-out on every networkWide event, before it wakes
// the sessions) as networkState for no node; each session then takes out
// its own route and adds its own endpoints (see forNode).
type netCache struct {
	mu      sync.Mutex
	valid   bool
	epoch   uint64
	shared  *minkepb.NetworkState // shared and never changed once stored
	version string                // networkVersion of shared
	// cost and prevCost are how long the last two computations took (see
	// netWideDelay).
	cost, prevCost atomic.Int64
}

// netWideDelay is how long the fan-out lets network-wide changes gather
// before waking every session: ten times what the shared state took to
// compute (at 100,000 tasks on a loaded machine, a computation takes a
// sizeable fraction of a second), so that a burst of changes (1,000
// services created at once, 5,000 nodes turning READY) costs one shared
// state and one message per session per window, and recomputing it takes
// at most about a tenth of a core; never more than netWideMaxDelay. In a
// small cluster it is a few milliseconds: ingress and DNS follow changes
// at once.
//
// The smaller of the last two costs counts: one slow computation (a cold
// start, the process descheduled on a busy machine) must not hold the next
// change back by seconds in a small cluster.
func (c *netCache) netWideDelay() time.Duration {
	cost := time.Duration(min(c.cost.Load(), c.prevCost.Load()))
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
func (c *netCache) get(tx raftstore.ReadTx, epoch uint64) (*minkepb.NetworkState, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid && c.epoch >= epoch {
		return c.shared, c.version
	}
	began := time.Now()
	st := networkState(tx, "")
	v := networkVersion(st)
	c.prevCost.Store(c.cost.Swap(int64(time.Since(began))))
	c.valid, c.epoch, c.shared, c.version = true, epoch, st, v
	return st, v
}

// forNode is networkState(tx, nodeID) built from shared, the state for no
// node: shared's routes without the node's own, the endpoints of the
// services with tasks on the node, and the overlay networks its live tasks
// are attached to. Services and ingress ports are shared
// with the cached state, which nobody changes. The second result
// fingerprints the node's state (see networkVersion) without re-encoding
// the shared part.
func forNode(tx raftstore.ReadTx, nodeID string, shared *minkepb.NetworkState, sharedVersion string) (*minkepb.NetworkState, string) {
	st := &minkepb.NetworkState{Endpoints: map[string]*minkepb.Endpoint{}, Services: shared.GetServices(),
		Ingress: shared.GetIngress(), Routes: shared.GetRoutes()}
	own := ownRoute(tx.Node(nodeID))
	if own != nil {
		st.Routes = make([]*minkepb.NodeRoute, 0, len(shared.GetRoutes()))
		for _, r := range shared.GetRoutes() {
			if r.GetSubnet() != own.GetSubnet() || r.GetVia() != own.GetVia() {
				st.Routes = append(st.Routes, r)
			}
		}
	}
	for _, t := range tx.TasksByNode(nodeID) {
		if ep := tx.Service(t.GetServiceId()).GetEndpoint(); ep != nil {
			st.Endpoints[t.GetServiceId()] = ep
		}
	}
	if len(shared.GetOverlays()) > 0 {
		needed := neededOverlays(tx, nodeID)
		for _, ov := range shared.GetOverlays() {
			if needed[ov.GetId()] {
				st.Overlays = append(st.Overlays, ov)
			}
		}
	}
	own2 := &minkepb.NetworkState{Endpoints: st.Endpoints}
	for _, ov := range st.Overlays { // which shared networks the node gets
		own2.Overlays = append(own2.Overlays, &minkepb.OverlayNetwork{Id: ov.GetId()})
	}
	if own != nil {
		own2.Routes = []*minkepb.NodeRoute{own}
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(own2)
	h := sha256.Sum256(b)
	return st, sharedVersion + "/" + hex.EncodeToString(h[:8])
}

// ownRoute is the route other nodes get to n's containers (as networkState
// builds it), or nil when n has none.
func ownRoute(n *minkepb.Node) *minkepb.NodeRoute {
	if n.GetStatus().GetState() != minkepb.NodeStatus_READY {
		return nil
	}
	subnet, err := netip.ParsePrefix(n.GetDescription().GetContainerSubnet())
	via, verr := netip.ParseAddr(n.GetStatus().GetAddr())
	if err != nil || verr != nil {
		return nil
	}
	return &minkepb.NodeRoute{Subnet: subnet.String(), Via: via.String()}
}
