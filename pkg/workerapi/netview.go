package workerapi

import (
	"maps"
	"slices"
	"strings"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// NetworkView is a worker's network state as its session builds it: the
// last complete state, with every delta since merged in (see
// NetworkDelta). The zero value holds an empty state. Not safe for
// concurrent use.
type NetworkView struct {
	ingress   map[string]*minkepb.IngressPort
	routes    map[string]*minkepb.NodeRoute
	endpoints map[string]*minkepb.Endpoint
	services  map[string]*minkepb.ServiceRecord
	overlays  map[string]*minkepb.OverlayNetwork
}

// Update applies a session message's network part, if it has one: a
// complete state (network) replaces the view, a delta (network_delta) is
// merged into it. It reports whether the message had either, that is
// whether the state may have changed. The view keeps the message's
// records, which must not be changed afterwards.
func (v *NetworkView) Update(msg *minkepb.SessionMessage) bool {
	st, d := msg.GetNetwork(), msg.GetNetworkDelta()
	if st != nil {
		v.reset(st)
	}
	if d != nil {
		v.merge(d)
	}
	return st != nil || d != nil
}

func (v *NetworkView) reset(st *minkepb.NetworkState) {
	v.ingress = keyed(st.GetIngress(), IngressKey)
	v.routes = keyed(st.GetRoutes(), (*minkepb.NodeRoute).GetSubnet)
	v.endpoints = maps.Clone(st.GetEndpoints())
	v.services = keyed(st.GetServices(), (*minkepb.ServiceRecord).GetId)
	v.overlays = keyed(st.GetOverlays(), (*minkepb.OverlayNetwork).GetId)
}

func keyed[T any](list []T, key func(T) string) map[string]T {
	out := make(map[string]T, len(list))
	for _, r := range list {
		out[key(r)] = r
	}
	return out
}

func (v *NetworkView) merge(d *minkepb.NetworkDelta) {
	v.ingress = upsert(v.ingress, d.GetIngress(), d.GetRemovedIngress(), IngressKey)
	v.routes = upsert(v.routes, d.GetRoutes(), d.GetRemovedRoutes(), (*minkepb.NodeRoute).GetSubnet)
	v.services = upsert(v.services, d.GetServices(), d.GetRemovedServices(), (*minkepb.ServiceRecord).GetId)
	v.overlays = upsert(v.overlays, d.GetOverlays(), d.GetRemovedOverlays(), (*minkepb.OverlayNetwork).GetId)
	if v.endpoints == nil {
		v.endpoints = map[string]*minkepb.Endpoint{}
	}
	maps.Copy(v.endpoints, d.GetEndpoints())
	for _, id := range d.GetRemovedEndpoints() {
		delete(v.endpoints, id)
	}
}

func upsert[T any](m map[string]T, records []T, removed []string, key func(T) string) map[string]T {
	if m == nil {
		m = make(map[string]T, len(records))
	}
	for _, id := range removed {
		delete(m, id)
	}
	for _, r := range records {
		m[key(r)] = r
	}
	return m
}

// State is the view as a complete state, records in the order the
// managers send them (see networkState). It shares the records, which
// must not be changed.
func (v *NetworkView) State() *minkepb.NetworkState {
	return &minkepb.NetworkState{
		Ingress:   sortedByKey(v.ingress),
		Routes:    sortedByKey(v.routes),
		Endpoints: maps.Clone(v.endpoints),
		Services:  sortedByKey(v.services),
		Overlays:  sortedByKey(v.overlays),
	}
}

func sortedByKey[T any](m map[string]T) []T {
	if len(m) == 0 {
		return nil
	}
	keys := slices.SortedFunc(maps.Keys(m), strings.Compare)
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}
