package runtime

import (
	"strings"
	"testing"
)

func TestMountValidate(t *testing.T) {
	for _, tc := range []struct {
		m       Mount
		wantErr string
	}{
		{Mount{Type: MountBind, Source: "/srv", Target: "/srv", ReadOnly: true}, ""},
		{Mount{Type: MountVolume, Source: "db_1.data", Target: "/db", NoCopy: true}, ""},
		{Mount{Type: MountTmpfs, Target: "/run", TmpfsSize: 1 << 20, TmpfsMode: 0o700}, ""},
		{Mount{Type: "", Source: "x", Target: "/x"}, `type "": want bind, volume or tmpfs`},
		{Mount{Type: MountBind, Source: "/srv", Target: "//"}, "want an absolute path other than /"},
		{Mount{Type: MountBind, Source: "/srv", Target: "x"}, "want an absolute path"},
		{Mount{Type: MountVolume, Source: "a/b", Target: "/x"}, `volume source "a/b"`},
		{Mount{Type: MountVolume, Source: "xx", Target: "/x", TmpfsSize: 1}, "apply to type=tmpfs only"},
		{Mount{Type: MountTmpfs, Source: "x", Target: "/x"}, "tmpfs takes no source"},
		{Mount{Type: MountTmpfs, Target: "/x", TmpfsMode: 0o17777}, "tmpfs mode 17777"},
		{Mount{Type: MountBind, Source: "/a", Target: "/x", NoCopy: true}, "volume-nocopy applies to type=volume only"},
	} {
		err := ValidateMount(tc.m)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("ValidateMount(%+v) = %v, want %q", tc.m, err, tc.wantErr)
		}
	}
}
