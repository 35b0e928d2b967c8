package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minke-io/minke/internal/testimage"
)

// checkRemoved is the leak check for a container this test created and
// removed: no mount under its directory, no cgroup, no directory.
func checkRemoved(t *testing.T, r *Runtime, id string) {
	t.Helper()
	if isMounted(t, r.containerDir(id)) {
		t.Errorf("%s: something is still mounted under %s", id, r.containerDir(id))
	}
	if _, err := os.Stat(r.containerDir(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: container directory left behind (%v)", id, err)
	}
	if _, err := os.Stat(filepath.Dir(r.cgroups.MemoryLimitFile(id))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: cgroup left behind (%v)", id, err)
	}
}

// TestSandboxFilesystem checks mounts (bind read-only, named volume shared
// by two containers, tmpfs), the read-only root, the /etc files, ulimits
// and supplementary groups, as `docker run` with the same flags would set
// them up.
func TestSandboxFilesystem(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, probeImage(t), "probe:latest")

	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("# host\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\nsearch corp.example\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := hostResolvConf
	hostResolvConf = resolv
	t.Cleanup(func() { hostResolvConf = old })

	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "in.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := ContainerSpec{
		ID: "sbx-fs1", Image: ref, Args: []string{"sandbox"},
		ReadonlyRootfs: true,
		Mounts: []Mount{
			{Type: MountBind, Source: data, Target: "/data", ReadOnly: true},
			{Type: MountVolume, Source: "testvol", Target: "/vol"},
			{Type: MountTmpfs, Target: "/scratch", TmpfsSize: 1 << 20},
		},
		ExtraHosts: []string{"10.9.8.7 db db.local"},
		Ulimits:    []Ulimit{{Name: "nofile", Soft: 2048, Hard: 4096}, {Name: "core", Soft: 0, Hard: 0}, {Name: "memlock", Soft: 32768, Hard: 65536}},
		Groups:     []string{"nogroup", "1234"},
	}
	got := runProbe(t, r, spec)
	want := map[string]string{
		"file_etc_hostname":    "sbx-fs1",
		"file_etc_resolv.conf": "nameserver 10.1.2.3 search corp.example options edns0",
		"file_data_in.txt":     "hello",
		"nofile_hard":          "4096",
		"memlock":              "32768:65536",
		"core":                 "0:0",
		"groups":               "0,1234,65534", // the kernel sorts them
		"write_rootfile":       "EROFS",
		"write_tmp_x":          "EROFS",
		"write_data_x":         "EROFS",
		"write_vol_x":          "ok",
		"write_scratch_x":      "ok",
		"write_etc_hosts":      "ok",
		"vol_lines":            "1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, line := range []string{"127.0.0.1 localhost", "10.9.8.7 db db.local"} {
		if !strings.Contains(got["file_etc_hosts"], line) {
			t.Errorf("/etc/hosts %q lacks %q", got["file_etc_hosts"], line)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "x")); err == nil {
		t.Error("the read-only bind was written on the host")
	}

	// A second container, with defaults, sees the volume's data and gets
	// docker's default rlimits (the hard limit capped at the worker's when
	// the worker may not raise it).
	got = runProbe(t, r, ContainerSpec{ID: "sbx-fs2", Image: ref, Args: []string{"sandbox"},
		Mounts: []Mount{{Type: MountVolume, Source: "testvol", Target: "/vol"}}})
	var host unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &host); err != nil {
		t.Fatal(err)
	}
	hard := uint64(524288)
	if unix.Prlimit(0, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: host.Cur, Max: hard}, nil) != nil {
		hard = min(hard, host.Max)
	}
	want = map[string]string{
		"vol_lines":            "2",
		"write_rootfile":       "ok",
		"nofile_hard":          strconv.FormatUint(hard, 10),
		"groups":               "0",
		"file_etc_resolv.conf": "nameserver 10.1.2.3 search corp.example options edns0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("second container: %s = %q, want %q", k, got[k], v)
		}
	}
	b, err := os.ReadFile(filepath.Join(r.VolumePath("testvol"), "x"))
	if err != nil || string(b) != "x\nx\n" {
		t.Errorf("volume on the host holds %q, %v; want two lines", b, err)
	}
}

// TestResolvConfWithoutUsableHostServers checks docker's fallback when
// the host only has loopback resolvers (systemd-resolved's 127.0.0.53).
func TestResolvConfWithoutUsableHostServers(t *testing.T) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := hostResolvConf
	hostResolvConf = resolv
	t.Cleanup(func() { hostResolvConf = old })
	tests := []struct {
		spec ContainerSpec
		want string
	}{
		{ContainerSpec{}, "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch .\noptions edns0 trust-ad\n"},
		{ContainerSpec{DNSServers: []string{"10.0.0.2"}, DNSSearch: []string{"svc.local"}, DNSOptions: []string{"ndots:1"}},
			"nameserver 10.0.0.2\nsearch svc.local\noptions ndots:1\n"},
	}
	for _, tc := range tests {
		got, err := resolvConf(&tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("resolv.conf for %+v:\n%s\nwant:\n%s", tc.spec, got, tc.want)
		}
	}
}

// TestUserNotInImage checks that a user the image does not have fails the
// start with docker's message and leaves nothing behind.
func TestUserNotInImage(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	for _, tc := range []struct{ user, want string }{
		{"ghost", "unable to find user ghost: no matching entries in passwd file"},
		{"nobody:ghosts", "unable to find group ghosts: no matching entries in group file"},
	} {
		spec := ContainerSpec{ID: "sbx-ghost", Image: ref, User: tc.user}
		c, err := r.Create(testCtx(t), spec)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Start(testCtx(t))
		if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("user %q: Start = %v, want ErrStart with %q", tc.user, err, tc.want)
		}
		if err := c.Remove(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		checkRemoved(t, r, spec.ID)
	}
	spec := ContainerSpec{ID: "sbx-ghost", Image: ref, Groups: []string{"ghosts"}}
	c, err := r.Create(testCtx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(testCtx(t)); err == nil || !strings.Contains(err.Error(), "unable to find group ghosts") {
		t.Errorf("Groups [ghosts]: Start = %v", err)
	}
	if err := c.Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	checkRemoved(t, r, spec.ID)
}

func TestCreateRefusesBadSandbox(t *testing.T) {
	r := newTestRuntime(t)
	// Every case fails validation before the image is looked at: the image
	// reference is never pulled.
	for _, tc := range []struct {
		spec ContainerSpec
		want string
	}{
		{ContainerSpec{MemoryLimit: 4 << 20}, "below the minimum of 6291456 bytes (6MiB)"},
		{ContainerSpec{PidsLimit: -5}, "PidsLimit -5"},
		{ContainerSpec{CPUShares: 1}, "CPUShares 1"},
		{ContainerSpec{Mounts: []Mount{{Type: MountTmpfs, Target: "relative"}}}, `target "relative"`},
		{ContainerSpec{Ulimits: []Ulimit{{Name: "nofile", Soft: 10, Hard: 5}}}, "soft limit 10 is above the hard limit 5"},
		{ContainerSpec{Ulimits: []Ulimit{{Name: "nofile", Soft: 1, Hard: 1}, {Name: "NOFILE", Soft: 2, Hard: 2}}}, "given twice"},
		{ContainerSpec{ExtraHosts: []string{"nope"}}, "ExtraHosts"},
	} {
		tc.spec.ID, tc.spec.Image = "sbx-bad", "127.0.0.1:1/never-pulled"
		_, err := r.Create(testCtx(t), tc.spec)
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create(%+v) = %v, want ErrInvalidSpec with %q", tc.spec, err, tc.want)
		}
	}
}

func TestCreateRefusesMissingBindSource(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	spec := ContainerSpec{ID: "sbx-nosrc", Image: ref, Mounts: []Mount{{Type: MountBind, Source: "/nonexistent-sbx-src", Target: "/x"}}}
	_, err := r.Create(testCtx(t), spec)
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), `bind mount source "/nonexistent-sbx-src"`) {
		t.Fatalf("Create = %v, want ErrInvalidSpec naming the source", err)
	}
	checkRemoved(t, r, spec.ID)
}

// TestVolumeCopyUp checks docker's rule for a new named volume: it is
// filled with what the image has at the target, unless volume-nocopy; an
// existing volume is never overwritten.
func TestVolumeCopyUp(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	runProbe(t, r, ContainerSpec{ID: "sbx-copy", Image: ref, Args: []string{"sandbox"}, Mounts: []Mount{
		{Type: MountVolume, Source: "imgetc", Target: "/etc"},
		{Type: MountVolume, Source: "emptyetc", Target: "/mnt/etc", NoCopy: true},
	}})
	b, err := os.ReadFile(filepath.Join(r.VolumePath("imgetc"), "passwd"))
	if err != nil || !strings.HasPrefix(string(b), "root:x:0:0:") {
		t.Errorf("new volume at /etc: passwd = %q, %v; want the image's", b, err)
	}
	ents, err := os.ReadDir(r.VolumePath("emptyetc"))
	if err != nil || len(ents) != 0 {
		t.Errorf("volume-nocopy volume holds %v, %v; want nothing", ents, err)
	}
	// A second container: the volume exists, so the image's /etc is not
	// copied again over what the first one left.
	p := filepath.Join(r.VolumePath("imgetc"), "passwd")
	if err := os.WriteFile(p, []byte("root:x:0:0:changed:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runProbe(t, r, ContainerSpec{ID: "sbx-copy2", Image: ref, Args: []string{"sandbox"}, Mounts: []Mount{
		{Type: MountVolume, Source: "imgetc", Target: "/etc"},
	}})
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "changed") {
		t.Errorf("an existing volume was overwritten: %q", b)
	}
}
