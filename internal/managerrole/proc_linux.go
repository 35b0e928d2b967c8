package managerrole

import "syscall"

// diesWithParent: the role gets SIGTERM when the worker dies.
func diesWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
