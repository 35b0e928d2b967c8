package network

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// HostsFile is a container's /etc/hosts: localhost and the container's
// own name on its address.
func HostsFile(hostname string, addr netip.Addr) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	if addr.IsValid() && hostname != "" {
		fmt.Fprintf(&b, "%s\t%s\n", addr, hostname)
	}
	return b.Bytes()
}

// fallbackDNS is what docker gives containers when the host has only
// loopback resolvers, which a container cannot reach.
var fallbackDNS = []string{"8.8.8.8", "8.8.4.4"}

// ResolvConf is a container's /etc/resolv.conf derived from the host's:
// nameservers other than loopback ones (unreachable from the container's
// namespace), and the search and options lines. servers, when set, replace
// the nameservers (a DNS server the node runs for its containers).
func ResolvConf(host []byte, servers []netip.Addr) []byte {
	var ns, rest []string
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			a, err := netip.ParseAddr(f[1])
			if err != nil || a.IsLoopback() || a.Is6() {
				continue
			}
			ns = append(ns, a.String())
		case "search", "domain", "options":
			rest = append(rest, strings.Join(f, " "))
		}
	}
	if len(servers) > 0 {
		ns = ns[:0]
		for _, s := range servers {
			ns = append(ns, s.String())
		}
	}
	if len(ns) == 0 {
		ns = fallbackDNS
	}
	var b bytes.Buffer
	for _, s := range ns {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	for _, l := range rest {
		b.WriteString(l + "\n")
	}
	return b.Bytes()
}
