package main

import "syscall"

// childAttr makes the kernel stop the IdP if the benchmark dies without
// cleaning up, so no server outlives a run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
