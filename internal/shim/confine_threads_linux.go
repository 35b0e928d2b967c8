package shim

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capabilities, the bounding set, the ambient set, no_new_privs and the
// seccomp filter belong to a thread. A process that execs right after
// confining itself needs them only on the thread that calls execve (the
// others vanish at exec). The --init reaper does not exec: it stays as the
// container's pid 1, a Go program with several OS threads, so every one of
// them must be confined, or the runtime's other threads keep every
// capability of the init.

// threadScope says which threads a confining call acts on.
type threadScope bool

const (
	thisThread threadScope = false // the locked thread, which then execs
	allThreads threadScope = true  // every thread of the process (the reaper)
)

// ErrThreadsUnsupported: this binary links cgo, whose threads the Go
// runtime cannot reach (syscall.AllThreadsSyscall returns ENOTSUP).
var ErrThreadsUnsupported = errors.New("cannot confine every thread of a binary that links cgo")

// checkAllThreads fails when calls cannot reach every thread, before the
// init does any work: the reaper must not run half-confined.
func checkAllThreads() error {
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_GETPID, 0, 0, 0); errno != 0 {
		exe, _ := os.Executable()
		return fmt.Errorf("--init: %w (%s: %v); the container's pid 1 would keep capabilities in its other threads; use a helper binary built with CGO_ENABLED=0 (make build builds minke-shim so)", ErrThreadsUnsupported, exe, errno)
	}
	return nil
}

// prctl calls prctl(2) on the threads of scope.
func (s threadScope) prctl(option, arg2 uintptr) error {
	if s == thisThread {
		return unix.Prctl(int(option), arg2, 0, 0, 0)
	}
	if _, _, errno := syscall.AllThreadsSyscall6(unix.SYS_PRCTL, option, arg2, 0, 0, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// capset calls capset(2) on the threads of scope (pid 0 in hdr: each
// thread sets its own sets).
func (s threadScope) capset(hdr *unix.CapUserHeader, data *unix.CapUserData) error {
	if s == thisThread {
		return unix.Capset(hdr, data)
	}
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(data)), 0); errno != 0 {
		return errno
	}
	return nil
}

// seccompFlags are the flags of seccomp(SECCOMP_SET_MODE_FILTER): TSYNC
// installs the filter on every thread of the process (and, since the
// caller has no_new_privs, sets it on each of them too).
func (s threadScope) seccompFlags() uintptr {
	if s == thisThread {
		return 0
	}
	return unix.SECCOMP_FILTER_FLAG_TSYNC
}
