package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// Readiness checks write at most once per readyEvery: a storm of probes
// waits for one check and shares a success, so it cannot load the store.
// Failures are not remembered, so an outage shows in the next probe.
const readyEvery = time.Second

// minFreeBytes is the free space below which a SQLite store is not ready:
// logins write sessions, records and audit rows, and a disk this full
// fails most of them even when a tiny heartbeat still fits.
const minFreeBytes = 4 << 20

// recordHeartbeat is the record kind of readiness heartbeats, one per
// process, expiring on its own.
const recordHeartbeat = "heartbeat"

type readyState struct {
	mu   sync.Mutex
	at   time.Time // last successful check
	id   string    // this process's heartbeat record
	once sync.Once
}

// Ready reports whether the store can take a login: both pools answer,
// a heartbeat record can be written (a read-only or full database cannot),
// and a SQLite file's disk has room. The error wraps ErrUnavailable.
func (db *DB) Ready(ctx context.Context) error {
	rs := &db.ready
	rs.once.Do(func() {
		var b [8]byte
		_, _ = rand.Read(b[:])
		rs.id = hex.EncodeToString(b[:])
	})
	rs.mu.Lock()
	defer rs.mu.Unlock()
	now := time.Now()
	if !rs.at.IsZero() && now.Sub(rs.at) < readyEvery {
		return nil
	}
	if err := db.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if db.dir != "" {
		free, err := freeBytes(db.dir)
		if err == nil && free < minFreeBytes {
			return fmt.Errorf("%w: only %d bytes free beside the database", ErrUnavailable, free)
		}
	}
	stamp := []byte(now.UTC().Format(time.RFC3339Nano))
	if err := db.PutRecord(ctx, recordHeartbeat, rs.id, stamp, now.Add(time.Hour)); err != nil {
		return fmt.Errorf("%w: heartbeat write: %w", ErrUnavailable, err)
	}
	rs.at = now
	return nil
}
