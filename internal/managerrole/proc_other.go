//go:build !linux

package managerrole

import "syscall"

// diesWithParent: no parent-death signal outside Linux; a worker there
// runs no containers and is for development only.
func diesWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
