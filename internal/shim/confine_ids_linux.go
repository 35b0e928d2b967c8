package shim

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setIDs sets the supplementary groups, the gid and the uid of the threads
// of scope. syscall.Setgroups/Setgid/Setuid always act on every thread
// (AllThreadsSyscall: the runtime signals each thread and waits for all of
// them, about a sixth of the init's CPU); a process that execs right
// after needs them only on the exec'ing thread, as runc's init sets them.
func (s threadScope) setIDs(cred credential) error {
	if s == allThreads {
		if err := syscall.Setgroups(cred.groups); err != nil {
			return fmt.Errorf("setgroups %v: %w", cred.groups, err)
		}
		if err := syscall.Setgid(cred.gid); err != nil {
			return fmt.Errorf("setgid %d: %w", cred.gid, err)
		}
		if err := syscall.Setuid(cred.uid); err != nil {
			return fmt.Errorf("setuid %d: %w", cred.uid, err)
		}
		return nil
	}
	gids := make([]uint32, len(cred.groups))
	for i, g := range cred.groups {
		gids[i] = uint32(g)
	}
	var list uintptr
	if len(gids) > 0 {
		list = uintptr(unsafe.Pointer(&gids[0]))
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), list, 0); errno != 0 {
		return fmt.Errorf("setgroups %v: %w", cred.groups, errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETGID, uintptr(cred.gid), 0, 0); errno != 0 {
		return fmt.Errorf("setgid %d: %w", cred.gid, errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETUID, uintptr(cred.uid), 0, 0); errno != 0 {
		return fmt.Errorf("setuid %d: %w", cred.uid, errno)
	}
	return nil
}
