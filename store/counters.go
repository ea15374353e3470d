package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

const (
	// One statement both starts a new window (when the stored one has ended)
	// and counts the hit, so concurrent hits can never overwrite each other.
	// Every SET expression sees the row as it was before the update.
	qHitCounter = `INSERT INTO counters (counter_key, hits, window_start, reset_at) VALUES ($1, 1, $2, $3)
ON CONFLICT (counter_key) DO UPDATE SET
	hits         = CASE WHEN counters.reset_at <= excluded.window_start THEN 1 ELSE counters.hits + 1 END,
	window_start = CASE WHEN counters.reset_at <= excluded.window_start THEN excluded.window_start ELSE counters.window_start END,
	reset_at     = CASE WHEN counters.reset_at <= excluded.window_start THEN excluded.reset_at ELSE counters.reset_at END
RETURNING hits, window_start, reset_at`
	qUndoCounter  = `UPDATE counters SET hits = hits - 1 WHERE counter_key = $1 AND hits > 0 AND reset_at > $2`
	qGetCounter   = `SELECT hits, window_start, reset_at FROM counters WHERE counter_key = $1 AND reset_at > $2`
	qResetCounter = `DELETE FROM counters WHERE counter_key = $1`
	// substr rather than LIKE: keys hold "_" and "%" literally.
	qResetCounterPrefix = `DELETE FROM counters WHERE substr(counter_key, 1, $2) = $1`
)

// Counter is the state of a fixed-window attempt counter.
type Counter struct {
	Count       int
	WindowStart time.Time
	ResetAt     time.Time // the window ends (and the count restarts) at this instant
}

// HitCounter adds one to the counter for key and returns its new state. If
// the counter's window has ended (or there is none), a new window
// [now, now+window) starts with a count of 1.
func (db *DB) HitCounter(ctx context.Context, key string, now time.Time, window time.Duration) (Counter, error) {
	if err := db.resetPending(ctx, key); err != nil {
		return Counter{}, err
	}
	if key == "" {
		return Counter{}, errors.New("store: hit counter: empty key")
	}
	if window <= 0 {
		return Counter{}, fmt.Errorf("store: hit counter: window %v is not positive", window)
	}
	var c Counter
	var start, reset int64
	err := db.q.hitCounter.QueryRowContext(ctx, key, nanos(now), nanos(now.Add(window))).Scan(&c.Count, &start, &reset)
	if err != nil {
		return Counter{}, fmt.Errorf("store: hit counter: %w", err)
	}
	c.WindowStart, c.ResetAt = fromNanos(start), fromNanos(reset)
	return c, nil
}

// UndoCounter takes back one hit (never below zero) in the current window,
// for an attempt that failed because of an outage rather than the user.
// A counter whose window has ended is left alone.
func (db *DB) UndoCounter(ctx context.Context, key string, now time.Time) error {
	if err := db.resetPending(ctx, key); err != nil {
		return err
	}
	if _, err := db.q.undoCounter.ExecContext(ctx, key, nanos(now)); err != nil {
		return fmt.Errorf("store: undo counter: %w", err)
	}
	return nil
}

// GetCounter returns the counter for key, or the zero Counter if there is
// none or its window ended at or before now.
func (db *DB) GetCounter(ctx context.Context, key string, now time.Time) (Counter, error) {
	if err := db.resetPending(ctx, key); err != nil {
		return Counter{}, err
	}
	var c Counter
	var start, reset int64
	err := db.q.getCounter.QueryRowContext(ctx, key, nanos(now)).Scan(&c.Count, &start, &reset)
	if errors.Is(err, sql.ErrNoRows) {
		return Counter{}, nil
	}
	if err != nil {
		return Counter{}, fmt.Errorf("store: get counter: %w", err)
	}
	c.WindowStart, c.ResetAt = fromNanos(start), fromNanos(reset)
	return c, nil
}

// ResetCounter deletes the counter for key.
func (db *DB) ResetCounter(ctx context.Context, key string) error {
	if u := db.unit(ctx); u != nil {
		u.resetCounter(key)
		return nil
	}
	if _, err := db.q.resetCounter.ExecContext(ctx, key); err != nil {
		return fmt.Errorf("store: reset counter: %w", err)
	}
	return nil
}

// ResetCountersWithPrefix deletes every counter whose key starts with
// prefix (e.g. all of one account's per-client password budgets) and
// returns how many there were.
func (db *DB) ResetCountersWithPrefix(ctx context.Context, prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("store: reset counters: empty prefix")
	}
	res, err := db.write.ExecContext(ctx, qResetCounterPrefix, prefix, utf8.RuneCountInString(prefix))
	if err != nil {
		return 0, fmt.Errorf("store: reset counters: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// resetPending writes now a reset of key that the request's unit holds:
// a counter read or spent after its reset must find it done.
func (db *DB) resetPending(ctx context.Context, key string) error {
	u := db.unit(ctx)
	if u == nil || !u.takeReset(key) {
		return nil
	}
	if _, err := db.q.resetCounter.ExecContext(ctx, key); err != nil {
		return fmt.Errorf("store: reset counter: %w", err)
	}
	return nil
}
