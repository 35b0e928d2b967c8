package runtime

import (
	"errors"
	"strings"
	"testing"
)

func TestResolveCaps(t *testing.T) {
	tests := []struct {
		name       string
		add, drop  []string
		want       capMask
		wantErr    string // substring of the error; "" for success
		wantInList bool   // the error lists the allowed names
	}{
		{name: "docker default", want: 0xa80425fb},
		{name: "add with and without prefix, any case", add: []string{"NET_ADMIN", "cap_sys_ptrace"},
			want: 0xa80425fb | 1<<12 | 1<<19},
		{name: "drop one", drop: []string{"CAP_MKNOD"}, want: 0xa80425fb &^ (1 << 27)},
		{name: "drop ALL", drop: []string{"ALL"}, want: 0},
		{name: "drop ALL then add", drop: []string{"all"}, add: []string{"CHOWN"}, want: 1},
		{name: "add wins over drop", drop: []string{"NET_ADMIN"}, add: []string{"NET_ADMIN"}, want: 0xa80425fb | 1<<12},
		{name: "unknown add", add: []string{"NET_ADMINN"}, wantErr: `CapAdd entry "NET_ADMINN" is not a capability`, wantInList: true},
		{name: "unknown drop", drop: []string{"CAP_FOO"}, wantErr: `CapDrop entry "CAP_FOO" is not a capability; want ALL or one of`, wantInList: true},
		{name: "add ALL", add: []string{"ALL"}, wantErr: `CapAdd entry "ALL"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveCaps(tc.add, tc.drop)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalidSpec containing %q", err, tc.wantErr)
				}
				if tc.wantInList && !strings.Contains(err.Error(), "NET_ADMIN, NET_RAW") {
					t.Errorf("err does not list the capabilities: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("caps = %#x %v, want %#x %v", uint64(got), got.names(), uint64(tc.want), tc.want.names())
			}
		})
	}
}

func TestCapNames(t *testing.T) {
	if got := capMask(1<<0 | 1<<12 | 1<<63).names(); strings.Join(got, " ") != "CAP_CHOWN CAP_NET_ADMIN CAP_63" {
		t.Errorf("names = %q", got)
	}
	if len(defaultCaps.names()) != 14 {
		t.Errorf("default set has %d capabilities, want 14: %v", len(defaultCaps.names()), defaultCaps.names())
	}
}
