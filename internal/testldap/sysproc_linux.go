package testldap

import "syscall"

// sysProcAttr makes the kernel stop slapd if the test process dies without
// running its cleanups, so no server outlives the tests.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
