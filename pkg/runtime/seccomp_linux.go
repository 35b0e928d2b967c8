package runtime

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"unsafe"

	seccompbpf "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The default seccomp profile is docker's, taken as data from
// github.com/moby/profiles/seccomp (the package dockerd itself builds its
// default from), and compiled to classic BPF by
// github.com/elastic/go-seccomp-bpf, a pure-Go compiler: no cgo and no
// libseccomp on the worker. The profile depends on the container's
// capabilities (CAP_SYS_ADMIN allows mount, unshare, setns...; CAP_SYS_PTRACE
// ptrace of others; CAP_SYS_MODULE init_module...), so a filter is compiled
// once per worker process for each capability set in use and cached;
// containers with docker's default set all share one.
//
// Differences from libseccomp's compilation of the same profile, all on the
// side of refusing more:
//   - Only the native architecture is allowed. libseccomp also admits the
//     profile's sub-architectures (i386 and x32 on x86_64), so 32-bit
//     binaries run under docker and fail here with EPERM (x32 with ENOSYS).
//   - Syscalls the compiler's tables do not know are left out (denied).
//   - Syscall numbers above the highest one the tables know get ENOSYS
//     rather than EPERM, as runc does, so that a libc probing a syscall
//     newer than this worker falls back to the older one.

// seccompCache holds compiled filters by capability set.
var seccompCache struct {
	sync.Mutex
	byCaps map[capMask][]byte
}

// seccompFilter returns docker's default profile for a container with
// capability bounding set caps, compiled to a struct sock_filter array.
func seccompFilter(caps capMask) ([]byte, error) {
	seccompCache.Lock()
	defer seccompCache.Unlock()
	if f, ok := seccompCache.byCaps[caps]; ok {
		return f, nil
	}
	insts, err := compileSeccomp(caps)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("runtime: assembling seccomp filter: %w", err)
	}
	b := make([]byte, 0, len(raw)*int(unsafe.Sizeof(unix.SockFilter{})))
	for _, r := range raw {
		f := unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
		b = append(b, unsafe.Slice((*byte)(unsafe.Pointer(&f)), unsafe.Sizeof(f))...)
	}
	if seccompCache.byCaps == nil {
		seccompCache.byCaps = map[capMask][]byte{}
	}
	seccompCache.byCaps[caps] = b
	return b, nil
}

// compileSeccomp builds the BPF program of docker's default profile for caps.
func compileSeccomp(caps capMask) ([]bpf.Instruction, error) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps.names()}}}
	prof, err := seccomp.GetDefaultProfile(rs)
	if err != nil {
		return nil, fmt.Errorf("runtime: default seccomp profile: %w", err)
	}
	info, err := arch.GetInfo(runtime.GOARCH)
	if err != nil {
		return nil, fmt.Errorf("runtime: seccomp: %w", err)
	}
	policy, err := seccompPolicy(prof, info)
	if err != nil {
		return nil, err
	}
	insts, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("runtime: compiling seccomp profile: %w", err)
	}
	return enosysAbove(insts, maxSyscall(info))
}

// seccompPolicy translates an OCI seccomp profile into the compiler's
// policy: one group per rule, in the profile's order (the first matching
// group decides). Rules with several argument conditions need all of them
// (libseccomp's semantics for conditions on different arguments).
func seccompPolicy(prof *specs.LinuxSeccomp, info *arch.Info) (*seccompbpf.Policy, error) {
	def, err := seccompAction(prof.DefaultAction, prof.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	if def != seccompbpf.ActionErrno|seccompbpf.Action(unix.EPERM) && def != seccompbpf.ActionErrno {
		return nil, fmt.Errorf("runtime: seccomp default action %s is not supported (want SCMP_ACT_ERRNO)", prof.DefaultAction)
	}
	p := &seccompbpf.Policy{DefaultAction: seccompbpf.ActionErrno} // the compiler returns EPERM for it
	for _, rule := range prof.Syscalls {
		act, err := seccompAction(rule.Action, rule.ErrnoRet)
		if err != nil {
			return nil, err
		}
		g := seccompbpf.SyscallGroup{Action: act}
		var conds seccompbpf.ArgumentConditions
		for _, a := range rule.Args {
			c, err := seccompCondition(a)
			if err != nil {
				return nil, fmt.Errorf("runtime: seccomp rule for %v: %w", rule.Names, err)
			}
			conds = append(conds, c)
		}
		for _, name := range rule.Names {
			if _, ok := info.SyscallNames[name]; !ok {
				continue // not on this architecture, or newer than the tables
			}
			if len(conds) == 0 {
				g.Names = append(g.Names, name)
			} else {
				g.NamesWithCondtions = append(g.NamesWithCondtions, seccompbpf.NameWithConditions{Name: name, Conditions: conds})
			}
		}
		if len(g.Names)+len(g.NamesWithCondtions) > 0 {
			p.Syscalls = append(p.Syscalls, g)
		}
	}
	return p, nil
}

func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint) (seccompbpf.Action, error) {
	switch a {
	case specs.ActAllow:
		return seccompbpf.ActionAllow, nil
	case specs.ActErrno:
		errno := uint(unix.EPERM)
		if errnoRet != nil {
			errno = *errnoRet
		}
		return seccompbpf.ActionErrno | seccompbpf.Action(errno&unix.SECCOMP_RET_DATA), nil
	case specs.ActKill, specs.ActKillThread:
		return seccompbpf.ActionKillThread, nil
	case specs.ActKillProcess:
		return seccompbpf.ActionKillProcess, nil
	case specs.ActTrap:
		return seccompbpf.ActionTrap, nil
	case specs.ActLog:
		return seccompbpf.ActionLog, nil
	}
	return 0, fmt.Errorf("runtime: seccomp action %s is not supported", a)
}

func seccompCondition(a specs.LinuxSeccompArg) (seccompbpf.Condition, error) {
	c := seccompbpf.Condition{Argument: uint32(a.Index), Value: a.Value}
	switch a.Op {
	case specs.OpEqualTo:
		c.Operation = seccompbpf.Equal
	case specs.OpNotEqual:
		c.Operation = seccompbpf.NotEqual
	case specs.OpLessThan:
		c.Operation = seccompbpf.LessThan
	case specs.OpLessEqual:
		c.Operation = seccompbpf.LessOrEqual
	case specs.OpGreaterThan:
		c.Operation = seccompbpf.GreaterThan
	case specs.OpGreaterEqual:
		c.Operation = seccompbpf.GreaterOrEqual
	case specs.OpMaskedEqual:
		// (arg & Value) == ValueTwo; the compiler can express it when
		// ValueTwo is 0 (no bit of the mask set), which is how docker's
		// profile uses it (clone without namespace flags).
		if a.ValueTwo != 0 {
			return c, fmt.Errorf("masked-equal with a non-zero value (%#x) is not supported", a.ValueTwo)
		}
		c.Operation = seccompbpf.BitsNotSet
	default:
		return c, fmt.Errorf("operator %s is not supported", a.Op)
	}
	if a.Index > 5 {
		return c, fmt.Errorf("argument index %d: want 0-5", a.Index)
	}
	return c, nil
}

func maxSyscall(info *arch.Info) uint32 {
	nums := make([]int, 0, len(info.SyscallNumbers))
	for n := range info.SyscallNumbers {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	return uint32(nums[len(nums)-1])
}

// enosysAbove inserts, right after the program loads the syscall number, a
// check that answers ENOSYS for numbers above max, and relocates the jumps
// that cross the insertion point. The compiler's program starts with: load
// arch; jump to the default action if not native; load nr.
func enosysAbove(insts []bpf.Instruction, max uint32) ([]bpf.Instruction, error) {
	at := -1
	for i, in := range insts {
		if la, ok := in.(bpf.LoadAbsolute); ok && la.Off == 0 && la.Size == 4 {
			at = i + 1
			break
		}
	}
	if at < 0 || at > 4 {
		return nil, fmt.Errorf("runtime: seccomp program does not start by loading the syscall number")
	}
	extra := []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: max, SkipFalse: 1},
		bpf.RetConstant{Val: uint32(seccompbpf.ActionErrno) | uint32(unix.ENOSYS)},
	}
	n := uint32(len(extra))
	out := make([]bpf.Instruction, 0, len(insts)+len(extra))
	for i, in := range insts[:at] {
		crosses := func(skip uint32) bool { return i+1+int(skip) >= at }
		switch j := in.(type) {
		case bpf.Jump:
			if crosses(j.Skip) {
				j.Skip += n
			}
			in = j
		case bpf.JumpIf:
			for _, s := range []*uint8{&j.SkipTrue, &j.SkipFalse} {
				if crosses(uint32(*s)) {
					if uint32(*s)+n > 255 {
						return nil, fmt.Errorf("runtime: seccomp program: jump too long to relocate")
					}
					*s += uint8(n)
				}
			}
			in = j
		}
		out = append(out, in)
	}
	out = append(out, extra...)
	return append(out, insts[at:]...), nil
}
