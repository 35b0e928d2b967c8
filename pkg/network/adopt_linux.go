package network

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Adopt takes over the network of container id that a previous worker
// process attached and whose container is still running (the runtime
// re-adopted it): it reads the address back from the container's eth0,
// claims it in the pool so that it is never handed out twice, and
// reprograms the host-mode port rules. Call it after New and before Sweep,
// which would otherwise remove the namespace.
func (m *Manager) Adopt(id string, ports []PortMapping) (*Endpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ep, ok := m.endpoints[id]; ok {
		return ep, nil
	}
	path := m.NetNSPath(id)
	nsh, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("network: adopting %s: opening netns %s: %w", id, path, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, fmt.Errorf("network: adopting %s: netlink in netns: %w", id, err)
	}
	defer h.Close()
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return nil, fmt.Errorf("network: adopting %s: eth0: %w", id, err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(eth, netlink.FAMILY_V4) })
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("network: adopting %s: no IPv4 address on eth0 (%v)", id, err)
	}
	a, ok := netip.AddrFromSlice(addrs[0].IP.To4())
	if !ok || !m.cfg.Subnet.Contains(a) {
		return nil, fmt.Errorf("network: adopting %s: address %s is not in this node's subnet %s", id, addrs[0].IP, m.cfg.Subnet)
	}
	if err := m.pool.claim(a, id); err != nil {
		return nil, fmt.Errorf("network: adopting %s: %w", id, err)
	}
	ep := &Endpoint{ID: id, NetNSPath: path, Addr: netip.PrefixFrom(a, m.cfg.Subnet.Bits()),
		Gateway: m.pool.gateway, Ports: slices.Clone(ports)}
	m.endpoints[id] = ep
	if err := m.sync(); err != nil {
		delete(m.endpoints, id)
		m.pool.release(a)
		return nil, err
	}
	m.log.Info("container network adopted", "container_id", id, "addr", ep.Addr)
	return ep, nil
}

// claim marks a as owner's, as it was before a worker restart.
func (p *pool) claim(a netip.Addr, owner string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o, ok := p.used[a]; ok && o != owner {
		return fmt.Errorf("address %s is already held by %s", a, o)
	}
	p.used[a] = owner
	return nil
}
