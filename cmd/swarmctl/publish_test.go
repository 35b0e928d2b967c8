package main

import (
	"strings"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestParseEndpointMode(t *testing.T) {
	if ep, err := parseEndpoint(nil, "dnsrr"); err != nil || ep.GetMode() != minkepb.EndpointSpec_DNSRR {
		t.Fatalf("dnsrr: %v, %v", ep, err)
	}
	if ep, err := parseEndpoint([]string{"80"}, "VIP"); err != nil || ep.GetMode() != minkepb.EndpointSpec_VIP || len(ep.GetPorts()) != 1 {
		t.Fatalf("vip: %v, %v", ep, err)
	}
	if _, err := parseEndpoint(nil, "ipvs"); err == nil || !strings.Contains(err.Error(), "want vip or dnsrr") {
		t.Fatalf("bad mode: %v", err)
	}
}

func TestParsePublish(t *testing.T) {
	const ing, host = minkepb.PortConfig_INGRESS, minkepb.PortConfig_HOST
	const tcp, udp = minkepb.PortConfig_TCP, minkepb.PortConfig_UDP
	for _, tc := range []struct {
		in      string
		pub     uint32
		target  uint32
		proto   minkepb.PortConfig_Protocol
		mode    minkepb.PortConfig_PublishMode
		wantErr string
	}{
		{in: "8080:80", pub: 8080, target: 80, proto: tcp, mode: ing},
		{in: "53:53/udp", pub: 53, target: 53, proto: udp, mode: ing},
		{in: "80", pub: 0, target: 80, proto: tcp, mode: ing},
		{in: "published=8080,target=80,protocol=udp,mode=host", pub: 8080, target: 80, proto: udp, mode: host},
		{in: "8080:0", wantErr: "target port"},
		{in: "70000:80", wantErr: "published port"},
		{in: "8080:80/sctp", wantErr: "protocol"},
		{in: "published=8080", wantErr: "target=PORT is required"},
		{in: "target=80,mode=dsr", wantErr: "want ingress or host"},
		{in: "target=80,color=red", wantErr: "unknown key"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ep, err := parsePublish([]string{tc.in})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := ep.GetPorts()[0]
			if p.GetPublishedPort() != tc.pub || p.GetTargetPort() != tc.target || p.GetProtocol() != tc.proto || p.GetPublishMode() != tc.mode {
				t.Fatalf("got %v", p)
			}
		})
	}
}
