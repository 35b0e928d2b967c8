package network

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// programPeers makes the VXLAN device's entries equal to n's remote peers:
// a permanent neighbour entry (overlay address -> derived MAC), which the
// device's ARP proxy answers from, so no ARP broadcast crosses the
// underlay; and a forwarding entry (MAC -> the peer node's underlay
// address). The device learns nothing and has no flood entry, so frames for
// an address nobody announced are dropped rather than sent to every node.
// Local peers are the bridge's business and get no entry.
func (sb *sandbox) programPeers(local netip.Addr, n OverlayNetwork) error {
	want := map[netip.Addr]netip.Addr{} // overlay address -> VTEP
	for _, p := range n.Peers {
		if !p.NodeAddr.Is4() || p.NodeAddr == local || !n.Subnet.Contains(p.Addr) {
			continue
		}
		want[p.Addr] = p.NodeAddr
	}
	idx := sb.vxlan.Attrs().Index
	var errs []error

	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return sb.h.NeighList(idx, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("network: overlay %s: listing neighbours: %w", sb.id, err)
	}
	haveNeigh := map[netip.Addr]bool{}
	for _, ne := range neighs {
		a, ok := netip.AddrFromSlice(ne.IP.To4())
		if ok {
			if _, wanted := want[a]; wanted && bytes.Equal(ne.HardwareAddr, overlayMAC(a)) && ne.State&netlink.NUD_PERMANENT != 0 {
				haveNeigh[a] = true
				continue
			}
		}
		if err := sb.h.NeighDel(&ne); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("network: overlay %s: deleting neighbour %s: %w", sb.id, ne.IP, err))
		}
	}

	fdb, err := retryDump(func() ([]netlink.Neigh, error) { return sb.h.NeighList(idx, unix.AF_BRIDGE) })
	if err != nil {
		return fmt.Errorf("network: overlay %s: listing forwarding entries: %w", sb.id, err)
	}
	haveFDB := map[string]bool{}
	for _, f := range fdb {
		// Only the device's own remote entries (NTF_SELF, with a
		// destination); the bridge's entries for the port stay.
		if f.Flags&netlink.NTF_SELF == 0 || f.IP == nil {
			continue
		}
		vtep, _ := netip.AddrFromSlice(f.IP.To4())
		if a, ok := addrOfMAC(f.HardwareAddr); ok && want[a] == vtep {
			haveFDB[f.HardwareAddr.String()] = true
			continue
		}
		del := netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, HardwareAddr: f.HardwareAddr, IP: f.IP}
		if err := sb.h.NeighDel(&del); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("network: overlay %s: deleting forwarding entry %s: %w", sb.id, f.HardwareAddr, err))
		}
	}

	for a, vtep := range want {
		mac := overlayMAC(a)
		if !haveFDB[mac.String()] {
			f := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
				HardwareAddr: mac, IP: net.IP(vtep.AsSlice())}
			if err := sb.h.NeighSet(f); err != nil {
				errs = append(errs, fmt.Errorf("network: overlay %s: forwarding entry %s -> %s: %w", sb.id, mac, vtep, err))
			}
		}
		if !haveNeigh[a] {
			ne := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
				IP: net.IP(a.AsSlice()), HardwareAddr: mac}
			if err := sb.h.NeighSet(ne); err != nil {
				errs = append(errs, fmt.Errorf("network: overlay %s: neighbour %s: %w", sb.id, a, err))
			}
		}
	}
	return errors.Join(errs...)
}

// addrOfMAC inverts overlayMAC.
func addrOfMAC(mac net.HardwareAddr) (netip.Addr, bool) {
	if len(mac) != 6 || mac[0] != 0x02 || mac[1] != 0x42 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{mac[2], mac[3], mac[4], mac[5]}), true
}

// retryDump repeats a netlink dump that raced a change of the table (the
// kernel flags it interrupted, e.g. ARP entries of the bridge changing
// under traffic, or links of other containers and nodes on the same host
// coming and going), a bounded number of times.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range 5 {
		if out, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return out, err
}
