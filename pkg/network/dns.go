package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
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
}

// DNSServer answers containers' queries for service names (NAME: the VIP,
// or the tasks' addresses in DNSRR mode; tasks.NAME: the running tasks'
// addresses) and forwards every other query to the node's own resolvers.
// Names are matched case-insensitively.
type DNSServer struct {
	log       *slog.Logger
	upstreams []string // host:port
	names     atomic.Pointer[map[string][]netip.Addr]

	mu      sync.Mutex
	servers []*dns.Server
	wg      sync.WaitGroup
}

// NewDNSServer returns a server forwarding unknown names to upstreams (IP
// addresses; port 53 is implied).
func NewDNSServer(upstreams []string, log *slog.Logger) *DNSServer {
	s := &DNSServer{log: log.With("component", "dns")}
	for _, u := range upstreams {
		s.upstreams = append(s.upstreams, net.JoinHostPort(u, "53"))
	}
	empty := map[string][]netip.Addr{}
	s.names.Store(&empty)
	return s
}

// Update replaces the records. It is cheap and atomic: a query sees the old
// set or the new one.
func (s *DNSServer) Update(records []DNSRecord) {
	names := make(map[string][]netip.Addr, 2*len(records))
	for _, r := range records {
		n := strings.ToLower(strings.TrimSuffix(r.Name, "."))
		if n == "" {
			continue
		}
		if r.VIP.IsValid() {
			names[n] = []netip.Addr{r.VIP}
		} else {
			names[n] = r.Backends
		}
		names["tasks."+n] = r.Backends
	}
	s.names.Store(&names)
}

// Lookup is what a name resolves to; ok is false for names that are not
// the cluster's (forwarded).
func (s *DNSServer) Lookup(name string) (addrs []netip.Addr, ok bool) {
	addrs, ok = (*s.names.Load())[strings.ToLower(strings.TrimSuffix(name, "."))]
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
	addrs, ok := s.Lookup(q.Name)
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
