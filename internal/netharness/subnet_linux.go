package netharness

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// routeTypes are the words `ip route` may print before a route's prefix.
var routeTypes = map[string]bool{
	"unicast": true, "local": true, "broadcast": true, "multicast": true, "anycast": true,
	"blackhole": true, "unreachable": true, "prohibit": true, "throw": true, "nat": true,
}

// freeSubnet picks a random 10.A.B.0/24 that overlaps no IPv4 address or
// route in the root namespace and no address in any named namespace (other
// harnesses included). Two harnesses racing to the same /24 would still
// work, as each has its own bridge; the check keeps logs unambiguous and
// avoids shadowing a real network.
func freeSubnet() (netip.Prefix, error) {
	used, err := usedPrefixes()
	if err != nil {
		return netip.Prefix{}, err
	}
	for range 100 {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return netip.Prefix{}, err
		}
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, b[0], b[1], 0}), 24)
		free := true
		for _, p := range used {
			if p.Bits() > 0 && p.Overlaps(cand) {
				free = false
				break
			}
		}
		if free {
			return cand, nil
		}
	}
	return netip.Prefix{}, errors.New("no free /24 in 10.0.0.0/8 after 100 tries")
}

func usedPrefixes() ([]netip.Prefix, error) {
	var used []netip.Prefix
	add := func(out string, parse func(string) (netip.Prefix, bool)) {
		for _, line := range strings.Split(out, "\n") {
			if p, ok := parse(line); ok {
				used = append(used, p)
			}
		}
	}
	out, err := ipCmd("-o", "-4", "addr", "show")
	if err != nil {
		return nil, err
	}
	add(out, parseAddrLine)
	out, err = ipCmd("-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	add(out, parseRouteLine)
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, e := range entries {
		// A namespace may vanish between ReadDir and here; skip it then.
		if out, err := ipCmd("-n", e.Name(), "-o", "-4", "addr", "show"); err == nil {
			add(out, parseAddrLine)
		}
	}
	return used, nil
}

// parseAddrLine reads "2: eth0    inet 192.0.2.2/24 brd ...".
func parseAddrLine(line string) (netip.Prefix, bool) {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "inet" {
			p, err := netip.ParsePrefix(f[i+1])
			return p.Masked(), err == nil
		}
	}
	return netip.Prefix{}, false
}

// parseRouteLine reads "[type] PREFIX|ADDR|default ...".
func parseRouteLine(line string) (netip.Prefix, bool) {
	f := strings.Fields(line)
	if len(f) > 0 && routeTypes[f[0]] {
		f = f[1:]
	}
	if len(f) == 0 || f[0] == "default" {
		return netip.Prefix{}, false
	}
	if p, err := netip.ParsePrefix(f[0]); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(f[0]); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// listNames returns every named netns and every root-namespace link name.
func listNames() (netns, links map[string]bool, err error) {
	out, err := ipCmd("netns", "list")
	if err != nil {
		return nil, nil, err
	}
	netns = map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		// "mkab12cd-0 (id: 3)"
		if f := strings.Fields(line); len(f) > 0 {
			netns[f[0]] = true
		}
	}
	out, err = ipCmd("-o", "link", "show")
	if err != nil {
		return nil, nil, err
	}
	links = map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		// "7: mkab12cdv0@if2: <BROADCAST,...> ..."
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		links[name] = true
	}
	return netns, links, nil
}

// existing is listNames restricted to objects named like this harness's.
func existing(h *Harness) (netns, links map[string]bool, err error) {
	allNS, allLinks, err := listNames()
	if err != nil {
		return nil, nil, fmt.Errorf("listing namespaces and links: %w", err)
	}
	netns, links = map[string]bool{}, map[string]bool{}
	for n := range allNS {
		if strings.HasPrefix(n, "mk"+h.id+"-") {
			netns[n] = true
		}
	}
	for l := range allLinks {
		if strings.HasPrefix(l, "mk"+h.id) || strings.HasPrefix(l, h.bridge) {
			links[l] = true
		}
	}
	return netns, links, nil
}
