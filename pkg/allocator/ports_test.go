package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func svc(id, name string, ports ...*minkepb.PortConfig) *minkepb.Service {
	return &minkepb.Service{Meta: &minkepb.Meta{Id: id}, Spec: &minkepb.ServiceSpec{Name: name},
		Endpoint: &minkepb.Endpoint{Ports: ports}}
}

func port(pub, target uint32, mode minkepb.PortConfig_PublishMode) *minkepb.PortConfig {
	return &minkepb.PortConfig{PublishedPort: pub, TargetPort: target, PublishMode: mode}
}

func TestAllocatePorts(t *testing.T) {
	const ing, host = minkepb.PortConfig_INGRESS, minkepb.PortConfig_HOST
	others := []*minkepb.Service{
		svc("a", "web", port(8080, 80, ing)),
		svc("b", "agent", port(9100, 9100, host)),
		svc("c", "dyn", port(DynamicPortStart, 80, ing)),
	}
	for _, tc := range []struct {
		name    string
		ports   []*minkepb.PortConfig
		prev    *minkepb.Endpoint
		want    []uint32
		wantErr error
	}{
		{name: "free port", ports: []*minkepb.PortConfig{port(8081, 80, ing)}, want: []uint32{8081}},
		{name: "ingress port of another service", ports: []*minkepb.PortConfig{port(8080, 80, ing)}, wantErr: ErrPortInUse},
		{name: "host port over an ingress port", ports: []*minkepb.PortConfig{port(8080, 80, host)}, wantErr: ErrPortInUse},
		{name: "ingress over a host port", ports: []*minkepb.PortConfig{port(9100, 80, ing)}, wantErr: ErrPortInUse},
		{name: "two services on one host port", ports: []*minkepb.PortConfig{port(9100, 80, host)}, want: []uint32{9100}},
		{name: "dynamic skips taken", ports: []*minkepb.PortConfig{port(0, 80, ing), port(0, 81, ing)}, want: []uint32{DynamicPortStart + 1, DynamicPortStart + 2}},
		{name: "dynamic kept on update", ports: []*minkepb.PortConfig{port(0, 80, ing)},
			prev: &minkepb.Endpoint{Ports: []*minkepb.PortConfig{port(31000, 80, ing)}}, want: []uint32{31000}},
		{name: "target out of range", ports: []*minkepb.PortConfig{port(8082, 70000, ing)}, wantErr: ErrInvalidPort},
		{name: "published out of range", ports: []*minkepb.PortConfig{port(65536, 80, ing)}, wantErr: ErrInvalidPort},
		{name: "host without published", ports: []*minkepb.PortConfig{port(0, 80, host)}, wantErr: ErrInvalidPort},
		{name: "same port twice", ports: []*minkepb.PortConfig{port(8082, 80, ing), port(8082, 81, ing)}, wantErr: ErrInvalidPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := AllocatePorts("new", &minkepb.EndpointSpec{Ports: tc.ports}, tc.prev, others)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tc.want {
				if got := ep.GetPorts()[i].GetPublishedPort(); got != w {
					t.Fatalf("port %d published %d, want %d", i, got, w)
				}
			}
		})
	}
	// A service updating itself keeps its own port.
	if _, err := AllocatePorts("a", &minkepb.EndpointSpec{Ports: []*minkepb.PortConfig{port(8080, 80, ing)}}, nil, others); err != nil {
		t.Fatalf("service keeping its own port: %v", err)
	}
}

func TestAllocateVIP(t *testing.T) {
	others := []*minkepb.Service{
		{Meta: &minkepb.Meta{Id: "a"}, Endpoint: &minkepb.Endpoint{VirtualIp: "172.30.0.1"}},
		{Meta: &minkepb.Meta{Id: "b"}, Endpoint: &minkepb.Endpoint{VirtualIp: "172.30.0.3"}},
	}
	v, err := AllocateVIP("new", nil, others)
	if err != nil || !VIPPool.Contains(netip.MustParseAddr(v)) || v == "172.30.0.1" || v == "172.30.0.3" {
		t.Fatalf("new service: %q, %v; want a free address of %s", v, err, VIPPool)
	}
	if again, _ := AllocateVIP("new", nil, others); again != v {
		t.Fatalf("allocation is not a pure function: %q then %q", v, again)
	}
	// An ID whose start is taken gets another address.
	taken := append(others, &minkepb.Service{Meta: &minkepb.Meta{Id: "c"}, Endpoint: &minkepb.Endpoint{VirtualIp: v}})
	if w, err := AllocateVIP("new", nil, taken); err != nil || w == v {
		t.Fatalf("start taken: %q, %v; want an address other than %s", w, err, v)
	}
	// Different services spread over the pool instead of all asking for
	// the lowest free address.
	seen := map[string]bool{}
	for i := range 16 {
		w, _ := AllocateVIP(fmt.Sprintf("svc-%d", i), nil, others)
		seen[w] = true
	}
	if len(seen) < 12 {
		t.Fatalf("16 services' first choices hold only %d distinct addresses", len(seen))
	}
	if v, err := AllocateVIP("b", &minkepb.Endpoint{VirtualIp: "172.30.0.3"}, others); err != nil || v != "172.30.0.3" {
		t.Fatalf("kept on update: %q, %v", v, err)
	}
	// A service's own VIP does not count as taken.
	alone, _ := AllocateVIP("a", nil, others[1:])
	if v, err := AllocateVIP("a", nil, others); err != nil || v != alone {
		t.Fatalf("a service's own VIP is free to it: %q, %v; want %q", v, err, alone)
	}
}
