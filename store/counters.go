package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// One statement both starts a new window (when the stored one has ended)
	// and counts the hit, so concurrent hits can never overwrite each other.
	// Every SET expression sees the row as it was before the update.
	qHitCounter = `INSERT INTO counters (counter_key, hits, window_start, reset_at) VALUES ($1, 1, $2, $3)` +
		qHitCounterUpsert + `
RETURNING hits, window_start, reset_at`
	qHitCounterUpsert = `
ON CONFLICT (counter_key) DO UPDATE SET
	hits         = CASE WHEN counters.reset_at <= excluded.window_start THEN 1 ELSE counters.hits + 1 END,
	window_start = CASE WHEN counters.reset_at <= excluded.window_start THEN excluded.window_start ELSE counters.window_start END,
	reset_at     = CASE WHEN counters.reset_at <= excluded.window_start THEN excluded.reset_at ELSE counters.reset_at END`
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
	if u := db.unit(ctx); u != nil {
		// Giving a hit back can wait for the request's commit: until then
		// the budget only looks one attempt smaller.
		u.undoCounter(key, now)
		return nil
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

// CounterHit names one counter for HitCounters and the window it starts
// when it has none.
type CounterHit struct {
	Key    string
	Window time.Duration
}

// HitCounters is HitCounter for several distinct keys in one statement
// (the password budgets per client, per ID and per address of one
// attempt). The counters are returned in the order of hits.
func (db *DB) HitCounters(ctx context.Context, now time.Time, hits ...CounterHit) ([]Counter, error) {
	if len(hits) == 0 {
		return nil, nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO counters (counter_key, hits, window_start, reset_at) VALUES `)
	args := make([]any, 0, 3*len(hits))
	index := make(map[string]int, len(hits))
	for i, h := range hits {
		if h.Key == "" {
			return nil, errors.New("store: hit counters: empty key")
		}
		if h.Window <= 0 {
			return nil, fmt.Errorf("store: hit counters: window %v is not positive", h.Window)
		}
		if _, dup := index[h.Key]; dup {
			return nil, fmt.Errorf("store: hit counters: key %q twice", h.Key)
		}
		index[h.Key] = i
		if err := db.resetPending(ctx, h.Key); err != nil {
			return nil, err
		}
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "($%d, 1, $%d, $%d)", 3*i+1, 3*i+2, 3*i+3)
		args = append(args, h.Key, nanos(now), nanos(now.Add(h.Window)))
	}
	q.WriteString(qHitCounterUpsert)
	q.WriteString(" RETURNING counter_key, hits, window_start, reset_at")
	rows, err := db.write.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: hit counters: %w", err)
	}
	defer rows.Close()
	out := make([]Counter, len(hits))
	seen := 0
	for rows.Next() {
		var key string
		var c Counter
		var start, reset int64
		if err := rows.Scan(&key, &c.Count, &start, &reset); err != nil {
			return nil, fmt.Errorf("store: hit counters: %w", err)
		}
		c.WindowStart, c.ResetAt = fromNanos(start), fromNanos(reset)
		if i, ok := index[key]; ok {
			out[i] = c
			seen++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: hit counters: %w", err)
	}
	if seen != len(hits) {
		return nil, fmt.Errorf("store: hit counters: %d of %d counters returned", seen, len(hits))
	}
	return out, nil
}

// CounterHitter is a store with HitCounter, and perhaps HitCounters.
type CounterHitter interface {
	HitCounter(ctx context.Context, key string, now time.Time, window time.Duration) (Counter, error)
}

// HitAll hits every counter of hits on s: in one statement when s has
// HitCounters (DB does), one by one otherwise.
func HitAll(ctx context.Context, s CounterHitter, now time.Time, hits ...CounterHit) ([]Counter, error) {
	if b, ok := s.(interface {
		HitCounters(ctx context.Context, now time.Time, hits ...CounterHit) ([]Counter, error)
	}); ok {
		return b.HitCounters(ctx, now, hits...)
	}
	out := make([]Counter, 0, len(hits))
	for _, h := range hits {
		c, err := s.HitCounter(ctx, h.Key, now, h.Window)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
