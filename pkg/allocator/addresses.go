package allocator

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Addresses is what address allocation reads of the store: a network, and
// who holds an address on it (a live task or a service's VIP; "" when it is
// free). raftstore.ReadTx and *raftstore.WriteTx provide it; a WriteTx
// also sees its own pending writes, so several tasks created in one write
// get different addresses.
type Addresses interface {
	Network(id string) *minkepb.Network
	AddressHolder(networkID string, addr netip.Addr) string
}

// AttachNetworks gives a task that is being created an address on each
// network its spec attaches to (t.Networks); call it in the write that
// creates t, right before tx.Create(t). The store refuses a commit that
// would hand an address out twice, and frees a task's addresses when the
// task reaches a terminal state or is deleted.
//
// A task that cannot be attached is still created, so that the write's
// other tasks land and the user sees why:
//   - a network is full: the task waits in state NEW with the reason,
//     without addresses, where the scheduler leaves it and no worker is
//     sent it (a global service's task keeps its node); the Waiter
//     attaches it once an address is free, as swarm's allocator does;
//   - a network no longer exists: the task is REJECTED with the reason.
func AttachNetworks(tx Addresses, t *minkepb.Task) error {
	switch res, why := attach(tx, t); res {
	case attachWait:
		t.Networks = nil
		t.Status = &minkepb.TaskStatus{State: minkepb.TaskState_NEW, Message: why, Timestamp: t.GetStatus().GetTimestamp()}
	case attachGone:
		t.Networks = nil
		t.Status = &minkepb.TaskStatus{State: minkepb.TaskState_REJECTED, Message: "network attachment failed", Err: why,
			Timestamp: t.GetStatus().GetTimestamp()}
	}
	return nil
}

type attachResult int

const (
	attached attachResult = iota
	attachWait
	attachGone
)

// attach sets t.Networks to an address on each of its spec's networks, or
// says why it cannot.
func attach(tx Addresses, t *minkepb.Task) (attachResult, string) {
	t.Networks = nil
	for _, cfg := range t.GetSpec().GetNetworks() {
		n := tx.Network(cfg.GetTarget())
		if n == nil {
			return attachGone, fmt.Sprintf("network %s no longer exists", cfg.GetTarget())
		}
		addr, err := allocateAddr(tx, n, t.GetMeta().GetId())
		if err != nil {
			return attachWait, "waiting for a free address: " + strings.TrimPrefix(err.Error(), "allocator: ")
		}
		t.Networks = append(t.Networks, &minkepb.NetworkAttachment{NetworkId: n.GetMeta().GetId(),
			Addresses: []string{addr.String()}, Aliases: cfg.GetAliases()})
	}
	return attached, ""
}

// AllocateServiceVIPs returns the service's VIP on each network its spec
// attaches to (VIP mode only; nil in DNSRR mode): the one prev had on that
// network, else a free address of the network. VIPs on networks the spec
// no longer names are dropped, which frees them.
func AllocateServiceVIPs(tx Addresses, svc *minkepb.Service, prev *minkepb.Endpoint) ([]*minkepb.EndpointVirtualIP, error) {
	if svc.GetSpec().GetEndpoint().GetMode() != minkepb.EndpointSpec_VIP {
		return nil, nil
	}
	had := map[string]string{}
	for _, v := range prev.GetVirtualIps() {
		had[v.GetNetworkId()] = v.GetAddr()
	}
	var out []*minkepb.EndpointVirtualIP
	for _, cfg := range svc.GetSpec().GetTask().GetNetworks() {
		id := cfg.GetTarget()
		if a, ok := had[id]; ok {
			out = append(out, &minkepb.EndpointVirtualIP{NetworkId: id, Addr: a})
			continue
		}
		n := tx.Network(id)
		if n == nil {
			return nil, fmt.Errorf("%w: network %s", ErrNoAddresses, id)
		}
		addr, err := allocateAddr(tx, n, svc.GetMeta().GetId())
		if err != nil {
			return nil, err
		}
		out = append(out, &minkepb.EndpointVirtualIP{NetworkId: id, Addr: addr.String()})
	}
	return out, nil
}

// allocateAddr finds a free address of n's subnet (not its network,
// gateway or broadcast address) and returns it with the subnet's prefix
// length. The search starts at a point drawn from the holder's ID and
// wraps: deterministic for a given store and ID, few probes while the
// network is sparse, and an address freed a moment ago is not the next
// one handed out (stale ARP and conntrack entries on the workers for a
// reused address would send traffic to the wrong task).
func allocateAddr(tx Addresses, n *minkepb.Network, holderID string) (netip.Prefix, error) {
	subnet, err := netip.ParsePrefix(n.GetSubnet())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network %q has an invalid subnet %q: %w", n.GetSpec().GetName(), n.GetSubnet(), err)
	}
	gw, _ := netip.ParseAddr(n.GetGateway())
	first := u32(subnet.Masked().Addr()) + 1
	size := uint32(1)<<(32-subnet.Bits()) - 2 // without network and broadcast
	h := fnv.New32a()
	_, _ = h.Write([]byte(holderID))
	start := h.Sum32() % size
	for i := uint32(0); i < size; i++ {
		a := addr4(first + (start+i)%size)
		if a == gw {
			continue
		}
		if tx.AddressHolder(n.GetMeta().GetId(), a) == "" {
			return netip.PrefixFrom(a, subnet.Bits()), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w on network %q (%s): every address is held by a task or VIP; remove tasks or create a network with a larger --subnet",
		ErrNoAddresses, n.GetSpec().GetName(), subnet)
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
