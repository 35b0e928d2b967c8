package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// syscalls reports what the kernel (seccomp, capabilities, read-only and
// masked mounts) lets the container do beyond the basics in main.
func syscalls() {
	// unshare(CLONE_NEWUSER) needs no capability: only seccomp stops it.
	runtime.LockOSThread() // a thread that gets a new user ns is not reused
	fmt.Printf("unshare_user=%s\n", errnoResult(rawSyscall(syscall.SYS_UNSHARE, syscall.CLONE_NEWUSER, 0, 0)))
	// keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): the kernel keyring is not
	// namespaced.
	fmt.Printf("keyctl=%s\n", errnoResult(rawSyscall(syscall.SYS_KEYCTL, 1, 0, 0)))
	// finit_module(-1, "", 0): EBADF if the call got through to the kernel.
	empty := []byte{0}
	fmt.Printf("finit_module=%s\n", errnoResult(rawSyscall(sysFinitModule, ^uintptr(0), uintptr(unsafe.Pointer(&empty[0])), 0)))
	fmt.Printf("init_module=%s\n", errnoResult(rawSyscall(syscall.SYS_INIT_MODULE, 0, 0, uintptr(unsafe.Pointer(&empty[0])))))
	// clone3 answers ENOSYS so that libcs fall back to clone.
	fmt.Printf("clone3=%s\n", errnoResult(rawSyscall(435, 0, 0, 0)))
	// bpf(BPF_PROG_LOAD, NULL, 0)
	fmt.Printf("bpf=%s\n", errnoResult(rawSyscall(sysBPF, 5, 0, 0)))
	fmt.Printf("capset_sys_admin=%s\n", raiseCap(21))
	fmt.Printf("write_sysrq=%s\n", result(os.WriteFile("/proc/sysrq-trigger", []byte("h"), 0)))
	for _, f := range []string{"sched_debug", "latency_stats", "timer_stats"} {
		fmt.Printf("%s_bytes=%d\n", f, readLen("/proc/"+f))
	}
	for _, d := range []string{"/proc/scsi", "/proc/acpi"} {
		ents, err := os.ReadDir(d)
		n := len(ents)
		if err != nil {
			n = -1
		}
		fmt.Printf("%s_entries=%d\n", strings.TrimPrefix(strings.ReplaceAll(d, "/", "_"), "_"), n)
	}
	ents, _ := os.ReadDir("/dev")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	fmt.Printf("dev=%s\n", strings.Join(names, ","))
}

func rawSyscall(nr, a1, a2, a3 uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall(nr, a1, a2, a3)
	return e
}

func errnoResult(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return result(e)
}

// raiseCap tries to add capability c to the effective and permitted sets.
func raiseCap(c uint) string {
	hdr := struct {
		version uint32
		pid     int32
	}{0x20080522, 0}
	var data [2]struct{ eff, prm, inh uint32 }
	if e := rawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return "capget_" + result(e)
	}
	data[c/32].eff |= 1 << (c % 32)
	data[c/32].prm |= 1 << (c % 32)
	return errnoResult(rawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0))
}

// sandbox reports the filesystem and process setup: /etc files, rlimits,
// groups, and which paths are writable.
func sandbox() {
	for _, f := range []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/data/in.txt"} {
		b, _ := os.ReadFile(f)
		fmt.Printf("file%s=%s\n", strings.ReplaceAll(f, "/", "_"), strings.Join(strings.Fields(string(b)), " "))
	}
	var rl syscall.Rlimit
	// The Go runtime raises its soft RLIMIT_NOFILE to the hard limit at
	// start-up, so only the hard one is what the runtime set.
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	fmt.Printf("nofile_hard=%d\n", rl.Max)
	syscall.Getrlimit(8 /* RLIMIT_MEMLOCK */, &rl)
	fmt.Printf("memlock=%d:%d\n", rl.Cur, rl.Max)
	syscall.Getrlimit(4 /* RLIMIT_CORE */, &rl)
	fmt.Printf("core=%d:%d\n", int64(rl.Cur), int64(rl.Max))
	fmt.Printf("groups=%s\n", readStatus()["Groups"])
	for _, p := range []string{"/rootfile", "/tmp/x", "/vol/x", "/data/x", "/scratch/x", "/etc/hosts"} {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err == nil {
			_, err = f.WriteString("x\n")
			f.Close()
		}
		fmt.Printf("write%s=%s\n", strings.ReplaceAll(p, "/", "_"), result(err))
	}
	// What a later container on the same volume sees.
	b, _ := os.ReadFile("/vol/x")
	fmt.Printf("vol_lines=%d\n", strings.Count(string(b), "\n"))
}

// oom allocates and touches memory until the kernel kills it.
func oom() {
	var keep [][]byte
	for i := 0; i < 4096; i++ {
		b := make([]byte, 4<<20)
		for j := range b {
			if j%4096 == 0 {
				b[j] = 1
			}
		}
		keep = append(keep, b)
		fmt.Printf("allocated=%dMiB\n", 4*len(keep))
	}
	fmt.Println("survived")
}

// spin keeps n threads busy for d, then reports the CPU time it got.
func spin(arg string) {
	d, err := time.ParseDuration(arg)
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	runtime.GOMAXPROCS(4)
	deadline := time.Now().Add(d)
	done := make(chan struct{})
	for range 4 {
		go func() {
			x := 0
			for time.Now().Before(deadline) {
				for i := 0; i < 1e5; i++ {
					x += i
				}
			}
			_ = x
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("cpu_ms=%d\nwall_ms=%d\n", cpu.Milliseconds(), d.Milliseconds())
}

// forkMany starts up to n paused copies of itself and reports how many
// started and why the first one that failed did.
func forkMany(arg string) {
	n, _ := strconv.Atoi(arg)
	started, failure := 0, "none"
	for i := 0; i < n; i++ {
		_, err := syscall.ForkExec("/proc/self/exe", []string{"probe", "pause"}, &syscall.ProcAttr{Env: []string{"GOMAXPROCS=1"}})
		if err != nil {
			failure = result(err)
			break
		}
		started++
	}
	fmt.Printf("started=%d\nfork_error=%s\n", started, failure)
	time.Sleep(time.Hour) // the test reads the cgroup, then removes the container
}

// Syscall numbers the syscall package lacks (x86_64, arm64).
var (
	sysFinitModule uintptr = map[string]uintptr{"amd64": 313, "arm64": 273}[runtime.GOARCH]
	sysBPF         uintptr = map[string]uintptr{"amd64": 321, "arm64": 280}[runtime.GOARCH]
)
