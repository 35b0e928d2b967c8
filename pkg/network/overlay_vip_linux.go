package network

import (
	"fmt"
	"os"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// overlayVIPTable is the nftables table in a container's own namespace
// that balances the VIPs of the overlay networks it is attached to.
const overlayVIPTable = "minke-overlay"

// programEndpointVIPs writes the VIP rules of every network ep is attached
// to into its namespace, unless they are as last written. Called with mu
// held.
func (o *Overlays) programEndpointVIPs(ep *overlayEndpoint) error {
	var vips []VIPRule
	for _, att := range ep.atts {
		vips = append(vips, o.nets[att.NetworkID].VIPs...)
	}
	if ep.vipsOK && slices.EqualFunc(vips, ep.vips, func(a, b VIPRule) bool {
		return a.VIP == b.VIP && slices.Equal(a.Backends, b.Backends)
	}) {
		return nil
	}
	if err := programVIPsAt(ep.nsPath, vips); err != nil {
		ep.vipsOK = false
		return fmt.Errorf("network: VIPs of container %s: %w", ep.id, err)
	}
	ep.vips, ep.vipsOK = vips, true
	return nil
}

// programVIPsAt replaces the VIP table in the namespace at nsPath, in one
// atomic batch: connections the container opens to a VIP are DNATed, in
// its own output hook, to one of the VIP's backends (numgen round robin);
// a VIP without backends refuses (TCP reset, ICMP unreachable) instead of
// leaving the client waiting for ARP. No VIPs: the table is deleted.
//
// Balancing in the client's namespace keeps the client's overlay address as
// the source (the backend sees who called), needs no masquerade, and the
// reply comes straight back over the overlay to the namespace that holds the
// conntrack entry, which undoes the DNAT. A central balancer (per node or
// per network) would have to masquerade, or to route replies back through
// itself.
func programVIPsAt(nsPath string, vips []VIPRule) error {
	f, err := os.Open(nsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	if len(vips) == 0 {
		return deleteTable(c, overlayVIPTable)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: overlayVIPTable}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	var filter *nftables.Chain
	for _, v := range vips {
		if len(v.Backends) > 0 {
			d := dnatRule{Backends: v.Backends}
			set, err := backendMap(c, t, d)
			if err != nil {
				return err
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: concat(matchDaddr(v.VIP), dnatTo(d, set))})
			continue
		}
		if filter == nil {
			filter = c.AddChain(&nftables.Chain{Name: "output-filter", Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: filter, Exprs: concat(matchDaddr(v.VIP), matchL4(unix.IPPROTO_TCP),
			[]expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}})})
		c.AddRule(&nftables.Rule{Table: t, Chain: filter, Exprs: concat(matchDaddr(v.VIP),
			[]expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3}})})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing nftables table %s: %w", overlayVIPTable, err)
	}
	return nil
}
