//go:build !linux

package testldap

import "syscall"

// sysProcAttr: only Linux can tie slapd's life to the test process.
func sysProcAttr() *syscall.SysProcAttr { return nil }
