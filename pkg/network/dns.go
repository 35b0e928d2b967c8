package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// serviceTTL is short: records follow task changes within a second, and a
// resolver must not keep a dead task's address.
const serviceTTL = 1

// DNSRecord is what a service name resolves to inside containers.
type DNSRecord struct {
	Name string
	// VIP is the service's virtual IP; invalid in DNSRR mode, where Name
	// resolves to the Backends themselves.
	VIP      netip.Addr
	Backends []netip.Addr
	// Aliases are more names resolving as Name does (not tasks.ALIAS).
	Aliases []string
}

// DNSServer answers containers' queries for service names (NAME: the VIP,
// or the tasks' addresses in DNSRR mode; tasks.NAME: the running tasks'
// addresses) and forwards every other query to the node's own resolvers.
// Names are matched case-insensitively.
//
// A container attached to overlay networks (SetClient, by the address its
// queries come from) sees first the records of those networks, in its
// attachment order, then the node network's; a container sees no other
// network's records, so names never point into a network it cannot reach.
type DNSServer struct {
	log       *slog.Logger
	upstreams []string // host:port
	names     atomic.Pointer[nameTable]
	networks  atomic.Pointer[map[string]nameTable] // by network ID

	mu      sync.Mutex
	clients map[netip.Addr][]string // client address -> network IDs
	scopes  atomic.Pointer[map[netip.Addr][]string]
	servers []*dns.Server
	wg      sync.WaitGroup
}

// nameTable maps lower-case names (no trailing dot) to addresses.
type nameTable map[string][]netip.Addr

// NewDNSServer returns a server forwarding unknown names to upstreams (IP
// addresses; port 53 is implied).
func NewDNSServer(upstreams []string, log *slog.Logger) *DNSServer {
	s := &DNSServer{log: log.With("component", "dns"), clients: map[netip.Addr][]string{}}
	for _, u := range upstreams {
		s.upstreams = append(s.upstreams, net.JoinHostPort(u, "53"))
	}
	empty := nameTable{}
	s.names.Store(&empty)
	nets := map[string]nameTable{}
	s.networks.Store(&nets)
	scopes := map[netip.Addr][]string{}
	s.scopes.Store(&scopes)
	return s
}

func buildNames(records []DNSRecord) nameTable {
	names := make(nameTable, 2*len(records))
	for _, r := range records {
		n := dnsName(r.Name)
		if n == "" {
			continue
		}
		answer := r.Backends
		if r.VIP.IsValid() {
			answer = []netip.Addr{r.VIP}
		}
		names[n] = answer
		names["tasks."+n] = r.Backends
		for _, a := range r.Aliases {
			if a := dnsName(a); a != "" {
				if _, taken := names[a]; !taken {
					names[a] = answer
				}
			}
		}
	}
	return names
}

func dnsName(n string) string { return strings.ToLower(strings.TrimSuffix(n, ".")) }

// Update replaces the node network's records. It is cheap and atomic: a
// query sees the old set or the new one.
func (s *DNSServer) Update(records []DNSRecord) {
	names := buildNames(records)
	s.names.Store(&names)
}

// UpdateNetworks replaces the overlay networks' records, by network ID.
func (s *DNSServer) UpdateNetworks(records map[string][]DNSRecord) {
	nets := make(map[string]nameTable, len(records))
	for id, rs := range records {
		nets[id] = buildNames(rs)
	}
	s.networks.Store(&nets)
}

// SetClient scopes the queries from client (a container's node-network
// address) to the networks netIDs, then the node network's records; no
// networks: the node network's only.
func (s *DNSServer) SetClient(client netip.Addr, netIDs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(netIDs) == 0 {
		delete(s.clients, client)
	} else {
		s.clients[client] = slices.Clone(netIDs)
	}
	scopes := maps.Clone(s.clients)
	s.scopes.Store(&scopes)
}

// Lookup is what a name resolves to on the node network; ok is false for
// names that are not the cluster's (forwarded).
func (s *DNSServer) Lookup(name string) (addrs []netip.Addr, ok bool) {
	addrs, ok = (*s.names.Load())[dnsName(name)]
	return addrs, ok
}

// LookupFrom is what a name resolves to for a query from client.
func (s *DNSServer) LookupFrom(client netip.Addr, name string) (addrs []netip.Addr, ok bool) {
	n := dnsName(name)
	nets := *s.networks.Load()
	for _, id := range (*s.scopes.Load())[client] {
		if addrs, ok := nets[id][n]; ok {
			return addrs, true
		}
	}
	addrs, ok = (*s.names.Load())[n]
	return addrs, ok
}

// ListenAndServe serves UDP and TCP on addr (IP:port) until Close.
func (s *DNSServer) ListenAndServe(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("network: dns: %w", err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("network: dns: %w", err)
	}
	h := dns.HandlerFunc(s.serve)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		s.servers = append(s.servers, srv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("dns server stopped", "err", err)
			}
		}()
	}
	s.log.Info("dns server listening", "addr", addr)
	return nil
}

// Close stops the server and waits for it.
func (s *DNSServer) Close() {
	s.mu.Lock()
	srvs := s.servers
	s.servers = nil
	s.mu.Unlock()
	for _, srv := range srvs {
		_ = srv.Shutdown()
	}
	s.wg.Wait()
}

func (s *DNSServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	var client netip.Addr
	if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		client = ap.Addr().Unmap()
	}
	addrs, ok := s.LookupFrom(client, q.Name)
	if !ok {
		s.forward(w, req)
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if q.Qtype == dns.TypeA && q.Qclass == dns.ClassINET {
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: serviceTTL},
				A:   net.IP(a.AsSlice()),
			})
		}
	}
	// Other types of a cluster name: no data (NOERROR, empty), so that
	// resolvers asking for AAAA do not wait or fall back.
	_ = w.WriteMsg(m)
}

// forward relays a query to the node's resolvers, first answer wins;
// SERVFAIL when none answers.
func (s *DNSServer) forward(w dns.ResponseWriter, req *dns.Msg) {
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	for _, u := range s.upstreams {
		resp, _, err := c.ExchangeContext(ctx, req, u)
		if err == nil && resp != nil {
			_ = w.WriteMsg(resp)
			return
		}
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	_ = w.WriteMsg(m)
}

// Upstreams reads the nameservers of a resolv.conf, loopback ones included
// (the node can reach them, unlike its containers).
func Upstreams(resolvConf []byte) []string {
	var out []string
	for _, line := range strings.Split(string(resolvConf), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil {
				out = append(out, a.String())
			}
		}
	}
	return out
}
