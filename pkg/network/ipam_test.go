package network

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPoolHandsOutEachAddressOnce(t *testing.T) {
	p, err := newPool(netip.MustParsePrefix("172.29.9.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	// /29: .0 network, .1 gateway, .7 broadcast: .2-.6 are five addresses.
	seen := map[netip.Addr]bool{}
	for i := range 5 {
		a, err := p.allocate("c")
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if seen[a] || a == p.gateway || a == p.last || a == p.subnet.Addr() {
			t.Fatalf("allocation %d gave %s (seen %v)", i, a, seen)
		}
		seen[a] = true
	}
	if _, err := p.allocate("c"); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("sixth allocation: err %v, want ErrPoolExhausted", err)
	}
	p.release(netip.MustParseAddr("172.29.9.4"))
	a, err := p.allocate("c")
	if err != nil || a != netip.MustParseAddr("172.29.9.4") {
		t.Fatalf("after release: %s, %v; want 172.29.9.4", a, err)
	}
}

func TestValidateSubnet(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"172.29.1.0/24", true},
		{"10.0.0.0/8", true},
		{"172.29.1.5/24", false},
		{"172.29.1.0/31", false},
		{"fd00::/64", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			err := ValidateSubnet(netip.MustParsePrefix(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateSubnet(%s) = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}
