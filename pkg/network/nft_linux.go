package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// dnatRule is one published port: packets to any local address on
// Protocol/Published go to Target on one of Backends.
type dnatRule struct {
	Protocol  Protocol
	Published uint16
	Target    uint16
	Backends  []netip.Addr
}

// ruleset is everything the worker's nftables table holds.
type ruleset struct {
	table  string
	bridge string
	subnet netip.Prefix
	dnat   []dnatRule
	// vips balance any connection to a service VIP over its backends,
	// keeping the port; pool is where VIPs come from: what is still
	// addressed to it after DNAT (a VIP with no backend, or none known)
	// is rejected rather than routed out of the node.
	vips []VIPRule
	pool netip.Prefix
	// peers are the other workers' container subnets (reached by routes):
	// traffic between containers of different workers keeps its source.
	peers []netip.Prefix
}

// apply replaces the table with rs in one atomic batch: add (so that the
// delete cannot fail), delete, then build afresh.
func (rs ruleset) apply(c *nftables.Conn) error {
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: rs.table}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})

	// Container to container across workers (directly, or through a VIP
	// DNATed here): no masquerade, so that the callee sees its caller's
	// address. The reply comes back by the route to this node's subnet,
	// through this node's conntrack entry.
	for _, p := range rs.peers {
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(
			matchSaddr(rs.subnet), matchDaddrIn(p), []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})})
	}
	// Outbound: the subnet leaving through any other link.
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(
		matchSaddr(rs.subnet), matchOifname(rs.bridge, false), masquerade())})
	// DNAT'd connections to another node's container (ingress), and hairpin
	// connections from a container back onto the bridge: masquerade so that
	// replies come back through this node's conntrack entry.
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(
		matchCtDNAT(), matchOifname(rs.bridge, false), masquerade())})
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(
		matchCtDNAT(), matchSaddr(rs.subnet), matchOifname(rs.bridge, true), masquerade())})
	// Clients on the node dialling 127.0.0.1:PORT (route_localnet is on for
	// the bridge): the container must answer the gateway, not 127.0.0.1.
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(
		matchCtDNAT(), matchSaddr(loopbackNet), matchOifname(rs.bridge, true), masquerade())})

	for _, d := range rs.dnat {
		if len(d.Backends) == 0 {
			continue
		}
		// Loopback clients reach only this node's backends: a packet from
		// 127.0.0.1 cannot be routed to another node.
		var local []netip.Addr
		for _, b := range d.Backends {
			if rs.subnet.Contains(b) {
				local = append(local, b)
			}
		}
		// An anonymous map binds to one rule only: one each for the
		// prerouting, output and loopback rules.
		for _, ch := range []*nftables.Chain{pre, out, nil} {
			d := d
			if ch == nil {
				if len(local) == 0 {
					continue
				}
				d.Backends = local
			}
			set, err := backendMap(c, t, d)
			if err != nil {
				return fmt.Errorf("%w (port %d/%s)", err, d.Published, d.Protocol)
			}
			match := concat(matchLocalDaddr(), matchPort(d.Protocol, d.Published))
			switch ch {
			case out:
				match = concat(matchLocalDaddr(), loopbackDaddr(false), matchPort(d.Protocol, d.Published))
			case nil:
				ch = out
				match = concat(loopbackDaddr(true), matchPort(d.Protocol, d.Published))
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: concat(match, dnatTo(d, set))})
		}
	}
	for _, v := range rs.vips {
		if len(v.Backends) == 0 {
			continue
		}
		for _, ch := range []*nftables.Chain{pre, out} {
			d := dnatRule{Backends: v.Backends}
			set, err := backendMap(c, t, d)
			if err != nil {
				return err
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: concat(matchDaddr(v.VIP), dnatTo(d, set))})
		}
	}
	if rs.pool.IsValid() {
		filter := nftables.ChainTypeFilter
		for _, hook := range []*nftables.ChainHook{nftables.ChainHookForward, nftables.ChainHookOutput} {
			name := "forward"
			if hook == nftables.ChainHookOutput {
				name = "output-filter"
			}
			ch := c.AddChain(&nftables.Chain{Name: name, Table: t, Type: filter, Hooknum: hook,
				Priority: nftables.ChainPriorityFilter, Policy: &accept})
			// TCP gets a reset (connection refused), the rest an ICMP port
			// unreachable.
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: concat(matchDaddrIn(rs.pool), matchL4(unix.IPPROTO_TCP),
				[]expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}})})
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: concat(matchDaddrIn(rs.pool),
				[]expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3}})})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: writing nftables table %s: %w", rs.table, err)
	}
	return nil
}

// backendMap adds the anonymous map numgen looks backends up in; nil for
// one backend (no map needed).
func backendMap(c *nftables.Conn, t *nftables.Table, d dnatRule) (*nftables.Set, error) {
	if len(d.Backends) < 2 {
		return nil, nil
	}
	set := &nftables.Set{Table: t, Anonymous: true, Constant: true, IsMap: true,
		KeyType: nftables.TypeInteger, DataType: nftables.TypeIPAddr}
	elems := make([]nftables.SetElement, len(d.Backends))
	for i, b := range d.Backends {
		a := b.As4()
		elems[i] = nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)), Val: a[:]}
	}
	if err := c.AddSet(set, elems); err != nil {
		return nil, fmt.Errorf("network: nftables backend map: %w", err)
	}
	return set, nil
}

// matchDaddr: ip daddr a.
func matchDaddr(a netip.Addr) []expr.Any {
	b := a.As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b[:]},
	}
}

// matchDaddrIn: ip daddr in p.
func matchDaddrIn(p netip.Prefix) []expr.Any {
	a := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net4Mask(p.Bits()), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

// deleteTable removes the table if it exists.
func deleteTable(c *nftables.Conn, name string) error {
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: name}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: deleting nftables table %s: %w", name, err)
	}
	return nil
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// matchSaddr: ip saddr in p.
func matchSaddr(p netip.Prefix) []expr.Any {
	mask := net4Mask(p.Bits())
	a := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

func net4Mask(bits int) []byte {
	m := make([]byte, 4)
	binary.BigEndian.PutUint32(m, ^uint32(0)<<(32-bits))
	return m
}

// matchOifname: oifname == name (eq) or != name.
func matchOifname(name string, eq bool) []expr.Any {
	op := expr.CmpOpNeq
	if eq {
		op = expr.CmpOpEq
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifname(name)},
	}
}

func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

// matchCtDNAT: ct status dnat.
func matchCtDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// matchLocalDaddr: fib daddr type local.
func matchLocalDaddr() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

var loopbackNet = netip.MustParsePrefix("127.0.0.0/8")

// loopbackDaddr: ip daddr 127.0.0.0/8 (in) or != 127.0.0.0/8.
func loopbackDaddr(in bool) []expr.Any {
	op := expr.CmpOpNeq
	if in {
		op = expr.CmpOpEq
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net4Mask(8), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{127, 0, 0, 0}},
	}
}

// matchPort: meta l4proto P, th dport port.
func matchPort(p Protocol, port uint16) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if p == UDP {
		proto = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// dnatTo: dnat to BACKEND:Target, or, with several backends,
// dnat to numgen inc mod N map { 0: b0, 1: b1, ... } : Target.
func dnatTo(d dnatRule, set *nftables.Set) []expr.Any {
	var out []expr.Any
	if set == nil {
		a := d.Backends[0].As4()
		out = append(out, &expr.Immediate{Register: 1, Data: a[:]})
	} else {
		out = append(out,
			&expr.Numgen{Register: 1, Modulus: uint32(len(d.Backends)), Type: unix.NFT_NG_INCREMENTAL},
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetID: set.ID, SetName: set.Name})
	}
	if d.Target == 0 { // keep the port
		return append(out, &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1})
	}
	return append(out,
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(d.Target)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true})
}

func masquerade() []expr.Any { return []expr.Any{&expr.Masq{}} }

// ipsDstNAT is the conntrack status bit IPS_DST_NAT.
const ipsDstNAT = 1 << 5

// matchL4: meta l4proto proto.
func matchL4(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}
