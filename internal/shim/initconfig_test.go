package shim

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestInitConfigRoundTrip(t *testing.T) {
	base := InitConfig{Rootfs: "/r", Hostname: "h", Process: Process{Args: []string{"/true"}, Cwd: "/"}, Caps: 0xa80425fb,
		Sandbox: SandboxConfig{Mounts: []Mount{{Type: "tmpfs", Target: "/t"}}, Groups: []string{"wheel"}}}
	withFilter := base
	withFilter.Sandbox.Seccomp = bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7}, 300)
	for name, c := range map[string]InitConfig{"no filter": base, "filter": withFilter} {
		t.Run(name, func(t *testing.T) {
			b, err := encodeInitConfig(c)
			if err != nil {
				t.Fatal(err)
			}
			if c.Sandbox.Seccomp != nil && bytes.Contains(b, []byte(`"seccomp"`)) {
				t.Errorf("the filter went into the JSON")
			}
			got, err := decodeInitConfig(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("decoded %+v, want %+v", got, c)
			}
		})
	}
}

func TestDecodeInitConfigRefusesTruncated(t *testing.T) {
	b, err := encodeInitConfig(InitConfig{Rootfs: "/r"})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range [][]byte{nil, b[:3], b[:len(b)-1]} {
		if _, err := decodeInitConfig(in); err == nil || !strings.Contains(err.Error(), "init config") {
			t.Errorf("decodeInitConfig(%d bytes) = %v, want an error", len(in), err)
		}
	}
}
