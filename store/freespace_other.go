//go:build !unix

package store

import "errors"

// freeBytes is not measured here; the heartbeat write still checks.
func freeBytes(string) (uint64, error) { return 0, errors.New("store: free space unknown") }
