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
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.LocalAddr().String()
	l.Close()
	if err := s.ListenAndServe(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
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
