package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

const (
	qPutRecord = `INSERT INTO records (kind, id, value, expires_at, version) VALUES ($1, $2, $3, $4, 1)
ON CONFLICT (kind, id) DO UPDATE SET
	value = excluded.value, expires_at = excluded.expires_at, version = records.version + 1`
	qGetRecord     = `SELECT value FROM records WHERE kind = $1 AND id = $2 AND expires_at > $3`
	qGetRecordFull = `SELECT value, expires_at, version FROM records WHERE kind = $1 AND id = $2 AND expires_at > $3`
	qTakeRecord    = `DELETE FROM records WHERE kind = $1 AND id = $2 AND expires_at > $3 RETURNING value`
	qDeleteRecord  = `DELETE FROM records WHERE kind = $1 AND id = $2`
	qLockRecord    = `SELECT value, version FROM records WHERE kind = $1 AND id = $2 AND expires_at > $3`
	qCASRecord     = `UPDATE records SET value = $1, version = version + 1
WHERE kind = $2 AND id = $3 AND version = $4`
)

// maxUpdateAttempts bounds UpdateRecord's compare-and-set retries.
const maxUpdateAttempts = 5

// errVersionChanged means another writer updated the record between our read
// and our write; UpdateRecord retries on it.
var errVersionChanged = errors.New("record version changed")

func checkRecordKey(kind, id string) error {
	if kind == "" || id == "" {
		return errors.New("empty record kind or id")
	}
	return nil
}

// PutRecord stores value under (kind, id) until expires, replacing any record
// already there.
func (db *DB) PutRecord(ctx context.Context, kind, id string, value []byte, expires time.Time) error {
	if err := checkRecordKey(kind, id); err != nil {
		return fmt.Errorf("store: put record: %w", err)
	}
	if expires.IsZero() {
		return errors.New("store: put record: zero expiry")
	}
	if value == nil {
		value = []byte{} // the column is NOT NULL
	}
	if u := db.unit(ctx); u != nil {
		u.putRecord(kind, id, value, expires)
		return nil
	}
	if _, err := db.q.putRecord.ExecContext(ctx, kind, id, value, nanos(expires)); err != nil {
		return fmt.Errorf("store: put record %s: %w", kind, err)
	}
	return nil
}

// GetRecord returns the value of (kind, id), or ErrNotFound if there is none
// or it expired at or before now.
func (db *DB) GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error) {
	if u := db.unit(ctx); u != nil {
		return u.getRecord(ctx, kind, id, now)
	}
	var value []byte
	err := db.q.getRecord.QueryRowContext(ctx, kind, id, nanos(now)).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get record %s: %w", kind, err)
	}
	return value, nil
}

// TakeRecord returns and deletes (kind, id) in one statement, so of several
// concurrent callers exactly one gets the value: the basis of single-use
// codes. It returns ErrNotFound if the record is missing or expired.
func (db *DB) TakeRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error) {
	if u := db.unit(ctx); u != nil {
		// A record this request wrote is not visible to any other yet, so
		// taking it here is as single as taking it in the database.
		if v, ok, err := u.takeRecord(kind, id, now); ok {
			return v, err
		}
		defer u.forget(kind, id)
	}
	var value []byte
	err := db.q.takeRecord.QueryRowContext(ctx, kind, id, nanos(now)).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: take record %s: %w", kind, err)
	}
	return value, nil
}

// DeleteRecord removes (kind, id); removing a missing record is not an error.
func (db *DB) DeleteRecord(ctx context.Context, kind, id string) error {
	if u := db.unit(ctx); u != nil {
		u.deleteRecord(kind, id)
		return nil
	}
	if _, err := db.q.deleteRecord.ExecContext(ctx, kind, id); err != nil {
		return fmt.Errorf("store: delete record %s: %w", kind, err)
	}
	return nil
}

// UpdateRecord replaces the value of (kind, id) with fn(old value), keeping
// its expiry. Read and write happen in one transaction and the write only
// succeeds if the record's version is unchanged, so concurrent updates are
// never lost. On a lost race fn is called again with the newer value, so fn
// must be free of side effects. fn must not call back into the DB: it runs
// while the transaction holds a connection (for SQLite, the only writer).
//
// It returns ErrNotFound if the record is missing or expired at now, fn's
// own error unchanged if fn fails (nothing is written), and ErrConflict if
// concurrent writers kept winning.
func (db *DB) UpdateRecord(ctx context.Context, kind, id string, now time.Time, fn func(old []byte) ([]byte, error)) error {
	if u := db.unit(ctx); u != nil {
		if !spendAtOnce(ctx) || u.holds(kind, id) {
			// Deferred: a compare-and-swap at commit, which fails the whole
			// unit with ErrConflict if another request changed the record
			// after this one read it.
			return u.updateRecord(ctx, kind, id, now, fn)
		}
		// A budget (SpendAtOnce): written now, a lost race retried here;
		// the unit then reads the new value.
		defer u.forget(kind, id)
	}
	for attempt := 1; ; attempt++ {
		err := db.updateRecordOnce(ctx, kind, id, now, fn)
		if !errors.Is(err, errVersionChanged) {
			return err
		}
		if attempt == maxUpdateAttempts {
			return fmt.Errorf("store: update record %s after %d attempts: %w", kind, attempt, ErrConflict)
		}
		db.logger.DebugContext(ctx, "store: record changed concurrently, retrying", "kind", kind, "attempt", attempt)
		// A short random pause spreads out writers that collided.
		pause := time.Duration(attempt) * time.Millisecond * time.Duration(1+rand.IntN(4))
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: update record %s: %w", kind, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// fnError marks an error returned by UpdateRecord's callback so it is passed
// back unwrapped.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func (db *DB) updateRecordOnce(ctx context.Context, kind, id string, now time.Time, fn func(old []byte) ([]byte, error)) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var old []byte
		var version int64
		err := tx.StmtContext(ctx, db.q.lockRecord).QueryRowContext(ctx, kind, id, nanos(now)).Scan(&old, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		value, err := fn(old)
		if err != nil {
			return fnError{err}
		}
		if value == nil {
			value = []byte{}
		}
		res, err := tx.StmtContext(ctx, db.q.casRecord).ExecContext(ctx, value, kind, id, version)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return errVersionChanged
		}
		return nil
	})
	var fe fnError
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, errVersionChanged):
		return err
	case errors.As(err, &fe):
		return fe.err
	default:
		return fmt.Errorf("store: update record %s: %w", kind, err)
	}
}
