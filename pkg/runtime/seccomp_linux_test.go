package runtime

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData is struct seccomp_data as the kernel hands it to the filter.
// The kernel's BPF loads 32-bit words in native byte order, x/net/bpf's VM
// in network order, so each word sits where the kernel has it (the low
// half of a 64-bit argument first on little-endian machines) but is
// written big-endian.
func seccompData(nr int, auditArch uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], uint32(nr))
	binary.BigEndian.PutUint32(b[4:], auditArch)
	for i, a := range args {
		lo, hi := uint32(a), uint32(a>>32)
		first, second := lo, hi
		if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 { // big-endian host
			first, second = hi, lo
		}
		binary.BigEndian.PutUint32(b[16+8*i:], first)
		binary.BigEndian.PutUint32(b[20+8*i:], second)
	}
	return b
}

// TestSeccompProfile runs the compiled default profile in a BPF interpreter
// for syscalls docker allows, refuses, and decides by argument or by
// capability.
func TestSeccompProfile(t *testing.T) {
	info, err := arch.GetInfo(runtime.GOARCH)
	if err != nil {
		t.Skip(err)
	}
	const (
		allow = unix.SECCOMP_RET_ALLOW
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosy = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	sysAdmin := defaultCaps | capMaskOf("SYS_ADMIN")
	nr := func(name string) int {
		n, ok := info.SyscallNames[name]
		if !ok {
			t.Fatalf("no syscall %s on %s", name, info.Name)
		}
		return n
	}
	tests := []struct {
		name    string
		caps    capMask
		syscall string
		nr      int // used when syscall is ""
		arch    uint32
		args    []uint64
		want    uint32
	}{
		{name: "read", caps: defaultCaps, syscall: "read", want: allow},
		{name: "execve", caps: defaultCaps, syscall: "execve", want: allow},
		{name: "unshare", caps: defaultCaps, syscall: "unshare", want: eperm},
		{name: "unshare with SYS_ADMIN", caps: sysAdmin, syscall: "unshare", want: allow},
		{name: "mount", caps: defaultCaps, syscall: "mount", want: eperm},
		{name: "keyctl", caps: defaultCaps, syscall: "keyctl", want: eperm},
		{name: "add_key", caps: defaultCaps, syscall: "add_key", want: eperm},
		{name: "init_module", caps: defaultCaps, syscall: "init_module", want: eperm},
		{name: "init_module with SYS_MODULE", caps: defaultCaps | capMaskOf("SYS_MODULE"), syscall: "init_module", want: allow},
		{name: "reboot", caps: defaultCaps, syscall: "reboot", want: eperm},
		{name: "kexec_load", caps: sysAdmin, syscall: "kexec_load", want: eperm},
		{name: "clone plain thread", caps: defaultCaps, syscall: "clone", args: []uint64{unix.CLONE_VM | unix.CLONE_THREAD}, want: allow},
		{name: "clone new user ns", caps: defaultCaps, syscall: "clone", args: []uint64{unix.CLONE_NEWUSER}, want: eperm},
		{name: "clone new user ns with SYS_ADMIN", caps: sysAdmin, syscall: "clone", args: []uint64{unix.CLONE_NEWUSER}, want: allow},
		{name: "clone3 gets ENOSYS for glibc's fallback", caps: defaultCaps, syscall: "clone3", want: enosy},
		{name: "personality 0", caps: defaultCaps, syscall: "personality", args: []uint64{0}, want: allow},
		{name: "personality other", caps: defaultCaps, syscall: "personality", args: []uint64{0x0040000}, want: eperm},
		{name: "socket AF_INET", caps: defaultCaps, syscall: "socket", args: []uint64{unix.AF_INET}, want: allow},
		{name: "socket AF_VSOCK", caps: defaultCaps, syscall: "socket", args: []uint64{unix.AF_VSOCK}, want: eperm},
		{name: "newer than the tables", caps: defaultCaps, nr: 1000, want: enosy},
		{name: "foreign architecture", caps: defaultCaps, syscall: "read", arch: 0x40000003 /* i386 */, want: eperm},
	}
	if runtime.GOARCH == "amd64" {
		tests = append(tests, struct {
			name    string
			caps    capMask
			syscall string
			nr      int
			arch    uint32
			args    []uint64
			want    uint32
		}{name: "x32 ABI", caps: defaultCaps, nr: 0x40000000, want: enosy})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			insts, err := compileSeccomp(tc.caps)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := bpf.NewVM(insts)
			if err != nil {
				t.Fatal(err)
			}
			n := tc.nr
			if tc.syscall != "" {
				n = nr(tc.syscall)
			}
			a := tc.arch
			if a == 0 {
				a = uint32(info.ID)
			}
			got, err := vm.Run(seccompData(n, a, tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			if uint32(got) != tc.want {
				t.Errorf("%s(%v) -> %#x, want %#x", tc.syscall, tc.args, uint32(got), tc.want)
			}
		})
	}
}

// TestSeccompFilterCompiledOnce checks that a capability set is compiled
// once per process and shared.
func TestSeccompFilterCompiledOnce(t *testing.T) {
	a, err := seccompFilter(defaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	b, err := seccompFilter(defaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) == 0 || &a[0] != &b[0] {
		t.Fatal("the default filter was compiled twice")
	}
	c, err := seccompFilter(defaultCaps | capMaskOf("SYS_ADMIN"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c) == len(a) && &c[0] == &a[0] {
		t.Fatal("SYS_ADMIN shares the default filter")
	}
	t.Logf("default filter: %d instructions", len(a)/8)
}

func BenchmarkSeccompCompile(b *testing.B) {
	for b.Loop() {
		if _, err := compileSeccomp(defaultCaps); err != nil {
			b.Fatal(err)
		}
	}
}
