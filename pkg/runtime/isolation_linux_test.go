package runtime

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minke-io/minke/internal/testimage"
)

var (
	probeOnce sync.Once
	probeImg  v1.Image
	probeErr  error
)

// probeImage builds testdata/probe once per test binary.
func probeImage(t *testing.T) v1.Image {
	t.Helper()
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		probeImg, probeErr = testimage.Build(ctx, "testdata/probe")
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return probeImg
}

// runProbe runs the probe as a container with spec, waits for it to exit 0
// and returns its key=value report.
func runProbe(t *testing.T, r *Runtime, spec ContainerSpec) map[string]string {
	t.Helper()
	ctx := testCtx(t)
	c := create(t, r, spec)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.OpenLog(spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, rc); err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 0 {
		t.Fatalf("probe exited %+v; log:\n%s", st, b.String())
	}
	facts := map[string]string{}
	for _, line := range strings.Split(b.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			facts[k] = v
		}
	}
	t.Logf("probe %s:\n%s", spec.ID, b.String())
	return facts
}

// TestContainerIsolation runs a probe inside containers and checks that it
// gets what `docker run` gives a container: docker's default capabilities
// (none for a non-root user), no_new_privs, a read-only /proc/sys, masked
// /proc files, no mount, unusable block devices, its own PID and cgroup
// namespaces.
func TestContainerIsolation(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	const (
		defaultSet = "00000000a80425fb"
		netAdmin   = "00000000a80435fb" // default | 1<<12
		none       = "0000000000000000"
	)
	// Masked files read as empty; the host may lack some of them.
	var masked []string
	for _, f := range []string{"kcore", "timer_list", "keys"} {
		if _, err := os.Stat("/proc/" + f); err == nil {
			masked = append(masked, f+"_bytes")
		}
	}

	tests := []struct {
		name string
		spec ContainerSpec
		want map[string]string
	}{
		{"root default", ContainerSpec{ID: "probe-root"}, map[string]string{
			"uid": "0,0,0,0", "capeff": defaultSet, "capprm": defaultSet, "capbnd": defaultSet,
			"capinh": none, "capamb": none, "mknod_block": "ok",
		}},
		{"cap-add NET_ADMIN", ContainerSpec{ID: "probe-netadmin", CapAdd: []string{"NET_ADMIN"}}, map[string]string{
			"capeff": netAdmin, "capprm": netAdmin, "capbnd": netAdmin, "capinh": none,
		}},
		{"cap-drop ALL", ContainerSpec{ID: "probe-dropall", CapDrop: []string{"ALL"}}, map[string]string{
			"capeff": none, "capprm": none, "capbnd": none, "mknod_block": "EPERM",
		}},
		{"drop and add", ContainerSpec{ID: "probe-mixed", CapDrop: []string{"all"}, CapAdd: []string{"cap_chown", "NET_ADMIN"}}, map[string]string{
			"capeff": "0000000000001001", "capbnd": "0000000000001001",
		}},
		{"non-root user", ContainerSpec{ID: "probe-nobody", User: "nobody", CapAdd: []string{"NET_ADMIN"}}, map[string]string{
			"uid": "65534,65534,65534,65534", "capeff": none, "capprm": none, "capbnd": netAdmin, "capinh": none,
			"mknod_block": "EPERM",
		}},
		{"non-root user without SETUID", ContainerSpec{ID: "probe-nobody-dropall", User: "nobody", CapDrop: []string{"ALL"}}, map[string]string{
			"uid": "65534,65534,65534,65534", "capeff": none, "capbnd": none,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Image = ref
			got := runProbe(t, r, tc.spec)
			want := map[string]string{
				"nonewprivs":           "1",
				"write_core_pattern":   "EROFS",
				"mount_tmpfs":          "EPERM",
				"sys_firmware_entries": "0",
				// seccomp mode 2 (filter) with docker's default profile.
				"seccomp":          "2",
				"unshare_user":     "EPERM",
				"keyctl":           "EPERM",
				"finit_module":     "EPERM",
				"init_module":      "EPERM",
				"bpf":              "EPERM",
				"clone3":           "ENOSYS",
				"capset_sys_admin": "EPERM",
				"dev":              "fd,full,mqueue,null,ptmx,pts,random,shm,stderr,stdin,stdout,tty,urandom,zero",
			}
			if _, err := os.Stat("/proc/sysrq-trigger"); err == nil {
				want["write_sysrq"] = "EROFS"
			}
			for _, f := range []string{"sched_debug", "latency_stats", "timer_stats"} {
				if _, err := os.Stat("/proc/" + f); err == nil {
					want[f+"_bytes"] = "0"
				}
			}
			for _, d := range []string{"scsi", "acpi"} {
				if _, err := os.Stat("/proc/" + d); err == nil {
					want["proc_"+d+"_entries"] = "0"
				}
			}
			for _, k := range masked {
				want[k] = "0"
			}
			for k, v := range tc.want {
				want[k] = v
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if got["uid"] == "0,0,0,0" && got["groups"] != "0" {
				t.Errorf("groups = %q, want 0 (root's only group in the probe image)", got["groups"])
			}
			// Whether or not mknod worked, the node must not open: nodev
			// mounts (EACCES) and, on v1, the devices cgroup (EPERM).
			if o := got["open_block"]; o != "EACCES" && o != "EPERM" && o != "ENOENT" {
				t.Errorf("open_block = %q, want EACCES or EPERM", o)
			}
			if got["pids"] != "1" {
				t.Errorf("pids = %q: the probe sees processes other than itself", got["pids"])
			}
			cg := strings.Fields(got["cgroup"])
			if len(cg) == 0 {
				t.Error("no cgroup lines")
			}
			for _, l := range cg {
				if !strings.HasSuffix(l, ":/") {
					t.Errorf("cgroup line %q: want the namespace root /", l)
				}
			}
			checkDeviceRules(t, r, tc.spec.ID)
		})
	}

}

// TestSeccompFollowsCapabilities checks that the profile is docker's for
// the container's capabilities: without a filter (seccomp=unconfined) or
// with CAP_SYS_ADMIN, unshare(CLONE_NEWUSER) reaches the kernel (which
// answers EINVAL to the multi-threaded probe; the filter answers EPERM),
// while calls that need a capability the container lacks still fail.
func TestSeccompFollowsCapabilities(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	tests := []struct {
		name string
		spec ContainerSpec
		want map[string]string
	}{
		{"unconfined", ContainerSpec{ID: "probe-unconfined", SeccompUnconfined: true}, map[string]string{
			"seccomp": "0", "unshare_user": "EINVAL", "capset_sys_admin": "EPERM",
			"mount_tmpfs": "EPERM", "nonewprivs": "1",
		}},
		{"cap-add SYS_ADMIN", ContainerSpec{ID: "probe-sysadmin", CapAdd: []string{"SYS_ADMIN"}}, map[string]string{
			"seccomp": "2", "unshare_user": "EINVAL", "mount_tmpfs": "ok", "keyctl": "EPERM", "finit_module": "EPERM",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Image = ref
			got := runProbe(t, r, tc.spec)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if got["clone3"] == "ENOSYS" {
				t.Errorf("clone3 = ENOSYS: the filter answered, not the kernel")
			}
			// Without CAP_SYS_MODULE the kernel refuses (EPERM), or it was
			// built without modules (ENOSYS).
			if m := got["finit_module"]; m != "EPERM" && m != "ENOSYS" {
				t.Errorf("finit_module = %q, want EPERM or ENOSYS", m)
			}
		})
	}
}

func TestCreateRefusesBadCapability(t *testing.T) {
	r := newTestRuntime(t)
	for _, spec := range []ContainerSpec{
		{ID: "bad-add", Image: "unused", CapAdd: []string{"NET_ADMINN"}},
		{ID: "bad-drop", Image: "unused", CapDrop: []string{"CAP_FOO"}},
		{ID: "add-all", Image: "unused", CapAdd: []string{"ALL"}},
	} {
		_, err := r.Create(testCtx(t), spec)
		if !errors.Is(err, ErrInvalidSpec) {
			t.Fatalf("%s: err = %v, want ErrInvalidSpec", spec.ID, err)
		}
		if _, serr := os.Stat(r.containerDir(spec.ID)); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%s: container dir left behind", spec.ID)
		}
		t.Log(err)
	}
}

// checkDeviceRules checks, on cgroup v1, that the container's devices
// cgroup holds exactly the default allowlist. The cgroup outlives the
// container's process until Remove.
func checkDeviceRules(t *testing.T, r *Runtime, id string) {
	t.Helper()
	cg, ok := r.cgroups.(*cgroupV1)
	if !ok {
		return
	}
	if _, err := os.Stat(filepath.Join(cg.mount, "devices")); err != nil {
		t.Log("no v1 devices hierarchy on this host")
		return
	}
	b, err := os.ReadFile(filepath.Join(cg.mount, "devices", cg.parent, id, "devices.list"))
	if err != nil {
		t.Fatalf("devices cgroup: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	if strings.Join(got, ",") != strings.Join(defaultDeviceRules, ",") {
		t.Errorf("devices.list = %q, want %q", got, defaultDeviceRules)
	}
}

// TestInitKeepsSandbox checks that a command started under --init's reaper
// is confined like one exec'd directly: the reaper forks it from the
// thread that holds the seccomp filter and the reduced capabilities.
func TestInitKeepsSandbox(t *testing.T) {
	r := newTestRuntimeWith(t, Config{HelperBinary: buildHelper(t)}) // --init needs a helper without cgo
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	got := runProbe(t, r, ContainerSpec{ID: "probe-init", Image: ref, Init: true})
	for k, v := range map[string]string{
		"seccomp": "2", "nonewprivs": "1", "capeff": "00000000a80425fb", "capbnd": "00000000a80425fb",
		"unshare_user": "EPERM", "keyctl": "EPERM", "pids": "2",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// TestExecKeepsSandbox runs the probe as a command exec'd into a running
// container (how healthchecks run), before and after a worker restart
// (adoption): it gets the container's seccomp filter, groups and
// capabilities either way.
func TestExecKeepsSandbox(t *testing.T) {
	r := newTestRuntime(t)
	ref := testimage.Serve(t, probeImage(t), "probe:latest")
	ctx := testCtx(t)
	c := create(t, r, ContainerSpec{ID: "probe-exec", Image: ref, Args: []string{"pause"}, Groups: []string{"1234"}})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := New(Config{Root: r.root, CgroupParent: r.cgroupParent})
	if err != nil {
		t.Fatal(err)
	}
	adopted, err := r2.Adopt(ctx)
	if err != nil || len(adopted) != 1 {
		t.Fatalf("Adopt = %v, %v; want the one container", adopted, err)
	}
	for name, ctr := range map[string]*Container{"started": c, "adopted": adopted[0]} {
		res, err := ctr.exec(ctx, []string{"/hello"}, 20*time.Second)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("%s: exec = %+v, %v", name, res, err)
		}
		got := map[string]string{}
		for _, line := range strings.Split(res.Output, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				got[k] = v
			}
		}
		for k, v := range map[string]string{
			"seccomp": "2", "nonewprivs": "1", "capeff": "00000000a80425fb", "unshare_user": "EPERM", "groups": "0,1234",
		} {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q; output:\n%s", name, k, got[k], v, res.Output)
			}
		}
	}
}
