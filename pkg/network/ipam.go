package network

import (
	"fmt"
	"net/netip"
	"sync"
)

// pool hands out the host addresses of a subnet, skipping the network
// address, the gateway (first host) and the broadcast address. It moves a
// cursor forward so that a freed address is reused as late as possible
// (a stale peer's ARP cache or conntrack entry then points nowhere).
type pool struct {
	subnet  netip.Prefix
	gateway netip.Addr
	last    netip.Addr // broadcast

	mu     sync.Mutex
	used   map[netip.Addr]string // address -> owner
	cursor netip.Addr
}

func newPool(subnet netip.Prefix) (*pool, error) {
	if err := ValidateSubnet(subnet); err != nil {
		return nil, err
	}
	gw := subnet.Addr().Next()
	last := lastAddr(subnet)
	return &pool{subnet: subnet, gateway: gw, last: last, used: map[netip.Addr]string{}, cursor: gw}, nil
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// allocate returns a free address for owner.
func (p *pool) allocate(owner string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	size := 1<<(32-p.subnet.Bits()) - 3 // minus network, gateway, broadcast
	a := p.cursor
	for range size {
		a = a.Next()
		if a == p.last || !p.subnet.Contains(a) {
			a = p.gateway.Next()
		}
		if _, taken := p.used[a]; !taken {
			p.used[a], p.cursor = owner, a
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w in subnet %s (%d in use)", ErrPoolExhausted, p.subnet, len(p.used))
}

// release frees a; releasing a free address does nothing.
func (p *pool) release(a netip.Addr) {
	p.mu.Lock()
	delete(p.used, a)
	p.mu.Unlock()
}

func (p *pool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}
