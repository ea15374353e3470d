//go:build unix

package store

import "syscall"

// freeBytes is the space an unprivileged writer may still use in dir.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil //nolint:unconvert // Bsize's type differs by platform
}
