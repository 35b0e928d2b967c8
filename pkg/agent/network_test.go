package agent

import (
	"errors"
	"testing"

	"github.com/minke-io/minke/pkg/network"
)

func TestResolveSubnet(t *testing.T) {
	for _, tc := range []struct {
		flag, addr, want string
		bad              bool
	}{
		{flag: "", addr: "10.1.2.7", want: "172.29.7.0/24"},
		{flag: "", addr: "127.0.0.1", want: "172.29.1.0/24"},
		{flag: "none", addr: "10.1.2.7", want: "invalid Prefix"},
		{flag: "10.9.0.0/16", addr: "10.1.2.7", want: "10.9.0.0/16"},
		{flag: "10.9.0.1/16", bad: true},
		{flag: "10.9.0.0/31", bad: true},
		{flag: "not-a-cidr", bad: true},
	} {
		t.Run(tc.flag+"@"+tc.addr, func(t *testing.T) {
			p, err := resolveSubnet(tc.flag, tc.addr)
			if tc.bad {
				if !errors.Is(err, network.ErrInvalid) {
					t.Fatalf("err %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil || p.String() != tc.want {
				t.Fatalf("%s, %v; want %s", p, err, tc.want)
			}
		})
	}
}
