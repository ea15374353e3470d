package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrExists reports that AddRecord found a live record under its key.
var ErrExists = errors.New("store: record exists")

// An expired row under the key is replaced as if it were absent; a live one
// is left alone and no row is counted as affected.
const qAddRecord = `INSERT INTO records (kind, id, value, expires_at, version) VALUES ($1, $2, $3, $4, 1)
ON CONFLICT (kind, id) DO UPDATE SET
	value = excluded.value, expires_at = excluded.expires_at, version = records.version + 1
WHERE records.expires_at <= $5`

// AddRecord stores value under (kind, id) until expires only if no record
// is live there at now (an expired one is replaced). Of several processes
// adding the same record at once exactly one succeeds; the others get
// ErrExists and read the winner's record: the way to create something once
// for all instances, such as a generated signing key.
func (db *DB) AddRecord(ctx context.Context, kind, id string, value []byte, expires, now time.Time) error {
	if err := checkRecordKey(kind, id); err != nil {
		return fmt.Errorf("store: add record: %w", err)
	}
	if expires.IsZero() {
		return errors.New("store: add record: zero expiry")
	}
	if value == nil {
		value = []byte{}
	}
	if u := db.unit(ctx); u != nil {
		defer u.forget(kind, id)
	}
	res, err := db.write.ExecContext(ctx, qAddRecord, kind, id, value, nanos(expires), nanos(now))
	if err != nil {
		return fmt.Errorf("store: add record %s: %w", kind, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: add record %s: %w", kind, err)
	}
	if n == 0 {
		return ErrExists
	}
	return nil
}
