package shim

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loadSeccomp installs filter (compiled by the worker: pkg/runtime seccompFilter) on the calling thread.
// The thread must have no_new_privs set (or CAP_SYS_ADMIN). Only this
// thread is filtered, which is enough for the init: execve keeps the
// calling thread alone, with its filter.
func loadSeccomp(filter []byte, scope threadScope) error {
	size := int(unsafe.Sizeof(unix.SockFilter{}))
	if len(filter) == 0 || len(filter)%size != 0 {
		return fmt.Errorf("seccomp filter of %d bytes is not a sock_filter array", len(filter))
	}
	insts := make([]unix.SockFilter, len(filter)/size)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&insts[0])), len(filter)), filter)
	prog := unix.SockFprog{Len: uint16(len(insts)), Filter: &insts[0]}
	if _, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, scope.seccompFlags(), uintptr(unsafe.Pointer(&prog))); errno != 0 {
		return fmt.Errorf("installing seccomp filter (%d instructions): %w", len(insts), errno)
	}
	return nil
}
