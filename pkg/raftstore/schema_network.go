package raftstore

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// The networks table and the indexes that make overlay address management
// a store invariant: no two live holders of one address on a network, no
// two networks with overlapping subnets or one VNI. Apply enforces them
// (see checkNetworkInvariants), so two proposers allocating at once cannot
// both commit the same address even though each read a state without the
// other's.
const (
	tableNetworks = "networks"

	// indexNetworkAddr indexes tasks that are not terminal by each of
	// their overlay addresses ("<network id>\x00<ip>"), and services by
	// each of their per-network VIPs and their cluster-wide VIP.
	indexNetworkAddr = "network_addr"
	// ClusterVIPNetwork is the network ID under which indexNetworkAddr
	// holds services' cluster-wide VIPs (Endpoint.VirtualIp, from
	// allocator.VIPPool), so that Apply refuses one handed out twice by
	// creates that each read a state without the other; no network has
	// the empty ID.
	ClusterVIPNetwork = ""
	// indexNetwork indexes services by the networks their task spec
	// attaches to.
	indexNetwork = "network_id"
)

// multiIndex indexes objects by several strings derived from them. Lookup
// arguments are joined with "\x00", so ("net", "10.0.0.2") finds the value
// "net\x00" + "10.0.0.2"; a prefix lookup with ("net") finds all of a
// network's values.
type multiIndex func(obj any) []string

var _ memdb.MultiIndexer = multiIndex(nil)

func (f multiIndex) FromObject(obj any) (bool, [][]byte, error) {
	vals := f(obj)
	if len(vals) == 0 {
		return false, nil, nil
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v + "\x00")
	}
	return true, out, nil
}

func (f multiIndex) FromArgs(args ...any) ([]byte, error) {
	parts := make([]string, len(args))
	for i, a := range args {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("raftstore: index argument %d must be a string, got %T", i, a)
		}
		parts[i] = s
	}
	return []byte(strings.Join(parts, "\x00") + "\x00"), nil
}

func (f multiIndex) PrefixFromArgs(args ...any) ([]byte, error) {
	return f.FromArgs(args...)
}

// netKey is an index value: a network ID and a bare address.
func netKey(networkID string, addr netip.Addr) string { return networkID + "\x00" + addr.String() }

// bareAddr accepts an address with or without a prefix length.
func bareAddr(s string) (netip.Addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), true
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}

// taskAddrKeys are a live task's overlay addresses; a terminal task holds
// none, which is what frees its addresses.
func taskAddrKeys(o any) []string {
	t := o.(*minkepb.Task)
	if t.GetStatus().GetState() >= minkepb.TaskState_COMPLETE {
		return nil
	}
	var out []string
	for _, att := range t.GetNetworks() {
		for _, a := range att.GetAddresses() {
			if ip, ok := bareAddr(a); ok {
				out = append(out, netKey(att.GetNetworkId(), ip))
			}
		}
	}
	return out
}

func serviceVIPKeys(o any) []string {
	var out []string
	ep := o.(*minkepb.Service).GetEndpoint()
	if ip, ok := bareAddr(ep.GetVirtualIp()); ok {
		out = append(out, netKey(ClusterVIPNetwork, ip))
	}
	for _, v := range ep.GetVirtualIps() {
		if ip, ok := bareAddr(v.GetAddr()); ok {
			out = append(out, netKey(v.GetNetworkId(), ip))
		}
	}
	return out
}

func serviceNetworkKeys(o any) []string {
	var out []string
	for _, n := range o.(*minkepb.Service).GetSpec().GetTask().GetNetworks() {
		if n.GetTarget() != "" {
			out = append(out, n.GetTarget())
		}
	}
	return out
}

// addNetworkSchema adds the networks table and the network indexes of the
// tasks and services tables.
func addNetworkSchema(s *memdb.DBSchema) {
	s.Tables[tableNetworks] = &memdb.TableSchema{Name: tableNetworks, Indexes: map[string]*memdb.IndexSchema{
		indexID: idIndex(),
		// Network names are unique regardless of case, like services'.
		indexName: {Name: indexName, Unique: true, Indexer: fieldIndex(func(o any) string {
			return strings.ToLower(o.(*minkepb.Network).GetSpec().GetName())
		})},
	}}
	s.Tables[tableTasks].Indexes[indexNetworkAddr] = &memdb.IndexSchema{
		Name: indexNetworkAddr, AllowMissing: true, Indexer: multiIndex(taskAddrKeys)}
	s.Tables[tableServices].Indexes[indexNetworkAddr] = &memdb.IndexSchema{
		Name: indexNetworkAddr, AllowMissing: true, Indexer: multiIndex(serviceVIPKeys)}
	s.Tables[tableServices].Indexes[indexNetwork] = &memdb.IndexSchema{
		Name: indexNetwork, AllowMissing: true, Indexer: multiIndex(serviceNetworkKeys)}
}

// Network returns the network with the given ID, or nil.
func (tx ReadTx) Network(id string) *minkepb.Network {
	if o := tx.get(tableNetworks, id); o != nil {
		return o.(*minkepb.Network)
	}
	return nil
}

// NetworkByName finds a network by its name, ignoring case.
func (tx ReadTx) NetworkByName(name string) *minkepb.Network {
	o, err := tx.reading(tableNetworks, indexName).First(tableNetworks, indexName, strings.ToLower(name))
	if err != nil || o == nil {
		return nil
	}
	return o.(*minkepb.Network)
}

// FindNetwork resolves a user's reference: an exact ID, a name, or a
// unique ID prefix, in that order.
func (tx ReadTx) FindNetwork(ref string) (*minkepb.Network, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty network reference", ErrNotFound)
	}
	if n := tx.Network(ref); n != nil {
		return n, nil
	}
	if n := tx.NetworkByName(ref); n != nil {
		return n, nil
	}
	matches := tx.list(tableNetworks, indexID+"_prefix", ref)
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("%w: network %q", ErrNotFound, ref)
	case 1:
		return matches[0].(*minkepb.Network), nil
	}
	return nil, fmt.Errorf("%w: network ID prefix %q matches %d networks", ErrAmbiguous, ref, len(matches))
}

// Networks lists all networks ordered by ID.
func (tx ReadTx) Networks() []*minkepb.Network {
	return listOf[*minkepb.Network](tx, tableNetworks, indexID)
}

// LiveTasksOnNetwork lists the tasks that are not terminal and hold an
// address on the network, ordered by address then ID (a task with two
// addresses there appears twice).
func (tx ReadTx) LiveTasksOnNetwork(networkID string) []*minkepb.Task {
	return listOf[*minkepb.Task](tx, tableTasks, indexNetworkAddr+"_prefix", networkID)
}

// ServicesOnNetwork lists the services whose task spec attaches to the
// network, ordered by ID.
func (tx ReadTx) ServicesOnNetwork(networkID string) []*minkepb.Service {
	return listOf[*minkepb.Service](tx, tableServices, indexNetwork, networkID)
}

// AddressHolder names what holds addr on a network: a live task
// ("task <id>") or a service VIP ("service <name>"), or "" when it is free.
func (tx ReadTx) AddressHolder(networkID string, addr netip.Addr) string {
	if o, _ := tx.reading(tableTasks, indexNetworkAddr).First(tableTasks, indexNetworkAddr, networkID, addr.String()); o != nil {
		return "task " + o.(*minkepb.Task).GetMeta().GetId()
	}
	if o, _ := tx.reading(tableServices, indexNetworkAddr).First(tableServices, indexNetworkAddr, networkID, addr.String()); o != nil {
		return "service " + o.(*minkepb.Service).GetSpec().GetName()
	}
	return ""
}

// checkNetworkInvariants is Apply's check, before obj is inserted in place
// of existing (nil for a new object), that it takes no address, subnet,
// VNI or name another object holds.
//
// A service keeps a cluster VIP it already held even if another holds it
// too: stores written before Apply checked cluster VIPs may hold such
// pairs (concurrent creates could pick the same one), and refusing every
// later update of both services would leave the user no way to change
// them short of removing one.
func checkNetworkInvariants(txn *memdb.Txn, obj, existing any, id string) error {
	var keys []string
	switch o := obj.(type) {
	case *minkepb.Task:
		keys = taskAddrKeys(o)
	case *minkepb.Service:
		keys = serviceVIPKeys(o)
		if old, ok := existing.(*minkepb.Service); ok && old.GetEndpoint().GetVirtualIp() == o.GetEndpoint().GetVirtualIp() {
			keys = slices.DeleteFunc(keys, func(k string) bool { return strings.HasPrefix(k, ClusterVIPNetwork+"\x00") })
		}
	case *minkepb.Network:
		return checkNetwork(txn, o, id)
	default:
		return nil
	}
	for _, k := range keys {
		netID, addr, _ := strings.Cut(k, "\x00")
		for _, table := range []string{tableTasks, tableServices} {
			other, err := txn.First(table, indexNetworkAddr, netID, addr)
			if err != nil {
				return fmt.Errorf("raftstore: lookup %s by address: %w", table, err)
			}
			if other != nil && metaID(other) != id {
				return fmt.Errorf("%w: address %s on network %s is held by %s %s", ErrAddressInUse,
					addr, netID, strings.TrimSuffix(table, "s"), metaID(other))
			}
		}
	}
	return nil
}

// checkNetwork refuses a network whose name, VNI or subnet another holds.
func checkNetwork(txn *memdb.Txn, n *minkepb.Network, id string) error {
	if other, _ := txn.First(tableNetworks, indexName, strings.ToLower(n.GetSpec().GetName())); other != nil && metaID(other) != id {
		return fmt.Errorf("%w: network name %q", ErrNameConflict, n.GetSpec().GetName())
	}
	subnet, err := netip.ParsePrefix(n.GetSubnet())
	if err != nil {
		return fmt.Errorf("%w: network %s has subnet %q: %v", ErrInvalidObject, id, n.GetSubnet(), err)
	}
	it, err := txn.Get(tableNetworks, indexID)
	if err != nil {
		return fmt.Errorf("raftstore: list networks: %w", err)
	}
	for o := it.Next(); o != nil; o = it.Next() {
		other := o.(*minkepb.Network)
		if metaID(other) == id {
			continue
		}
		if other.GetVni() == n.GetVni() {
			return fmt.Errorf("%w: VNI %d is network %q's", ErrConflict, n.GetVni(), other.GetSpec().GetName())
		}
		if p, err := netip.ParsePrefix(other.GetSubnet()); err == nil && p.Overlaps(subnet) {
			return fmt.Errorf("%w: subnet %s overlaps %s of network %q", ErrConflict, subnet, p, other.GetSpec().GetName())
		}
	}
	return nil
}
