package network

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestDNSServerAnswersServiceNames(t *testing.T) {
	s := NewDNSServer(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Port 0 is not an option for two sockets on one port: pick a free one.
	addr := serveOnFreePort(t, s)
	vip := netip.MustParseAddr("172.30.0.2")
	b1, b2 := netip.MustParseAddr("172.29.1.2"), netip.MustParseAddr("172.29.2.2")
	s.Update([]DNSRecord{
		{Name: "web", VIP: vip, Backends: []netip.Addr{b1, b2}},
		{Name: "db", Backends: []netip.Addr{b2}},
	})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	lookup := func(name string) []string {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		got, err := r.LookupHost(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		slices.Sort(got)
		return got
	}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"web", []string{"172.30.0.2"}},
		{"WEB.", []string{"172.30.0.2"}},
		{"tasks.web", []string{"172.29.1.2", "172.29.2.2"}},
		{"db", []string{"172.29.2.2"}},
		{"tasks.db", []string{"172.29.2.2"}},
	} {
		if got := lookup(tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// Records follow updates at once.
	s.Update([]DNSRecord{{Name: "web", VIP: vip, Backends: []netip.Addr{b1}}})
	if got := lookup("tasks.web"); !slices.Equal(got, []string{"172.29.1.2"}) {
		t.Errorf("after update: tasks.web %v", got)
	}
	// An unknown name with no upstream: a failure, not a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := r.LookupHost(ctx, "db"); err == nil {
		t.Error("db resolves after it was removed")
	}
}

// TestDNSServerScopesNamesToTheClientsNetworks queries the real server from
// different loopback sources standing in for containers on different
// overlay networks.
func TestDNSServerScopesNamesToTheClientsNetworks(t *testing.T) {
	s := NewDNSServer(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	addr := serveOnFreePort(t, s)
	a := netip.MustParseAddr
	s.Update([]DNSRecord{{Name: "web", VIP: a("172.30.0.2"), Backends: []netip.Addr{a("172.29.1.2")}}})
	s.UpdateNetworks(map[string][]DNSRecord{
		"neta": {
			{Name: "web", VIP: a("10.10.0.2"), Backends: []netip.Addr{a("10.10.0.5"), a("10.10.0.6")}, Aliases: []string{"www"}},
			{Name: "db", Backends: []netip.Addr{a("10.10.0.7")}},
		},
		"netb": {{Name: "cache", VIP: a("10.20.0.2"), Backends: []netip.Addr{a("10.20.0.5")}}},
	})
	onA, onB, onBoth, onNone := a("127.0.0.2"), a("127.0.0.3"), a("127.0.0.4"), a("127.0.0.5")
	s.SetClient(onA, []string{"neta"})
	s.SetClient(onB, []string{"netb"})
	s.SetClient(onBoth, []string{"netb", "neta"})

	lookupFrom := func(src netip.Addr, name string) ([]string, error) {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.UDPAddr{IP: src.AsSlice()}}
			if network == "tcp" {
				d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
			}
			return d.DialContext(ctx, network, addr)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		got, err := r.LookupHost(ctx, name)
		slices.Sort(got)
		return got, err
	}
	for _, tc := range []struct {
		client netip.Addr
		name   string
		want   []string // nil: must not resolve
	}{
		{onA, "web", []string{"10.10.0.2"}},
		{onA, "www", []string{"10.10.0.2"}},
		{onA, "tasks.web", []string{"10.10.0.5", "10.10.0.6"}},
		{onA, "db", []string{"10.10.0.7"}},
		{onA, "cache", nil},
		{onB, "cache", []string{"10.20.0.2"}},
		{onB, "tasks.cache", []string{"10.20.0.5"}},
		{onB, "db", nil},
		{onB, "web", []string{"172.30.0.2"}}, // the node network's
		{onBoth, "db", []string{"10.10.0.7"}},
		{onBoth, "cache", []string{"10.20.0.2"}},
		{onNone, "web", []string{"172.30.0.2"}},
		{onNone, "tasks.web", []string{"172.29.1.2"}},
		{onNone, "db", nil},
	} {
		got, err := lookupFrom(tc.client, tc.name)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s from %s: %v, want no answer", tc.name, tc.client, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s from %s: %v, %v; want %v", tc.name, tc.client, got, err, tc.want)
		}
	}
	// A container leaving its networks falls back to the node network.
	s.SetClient(onA, nil)
	if got, err := lookupFrom(onA, "web"); err != nil || !slices.Equal(got, []string{"172.30.0.2"}) {
		t.Errorf("web after leaving neta: %v, %v", got, err)
	}
}

// serveOnFreePort starts s on a port free for both UDP and TCP on
// 127.0.0.1 (a few tries: a port free for UDP may be taken for TCP).
func serveOnFreePort(t *testing.T, s *DNSServer) string {
	t.Helper()
	var err error
	for range 5 {
		var l net.PacketConn
		if l, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		addr := l.LocalAddr().String()
		l.Close()
		if err = s.ListenAndServe(addr); err == nil {
			t.Cleanup(s.Close)
			return addr
		}
	}
	t.Fatal(err)
	return ""
}
