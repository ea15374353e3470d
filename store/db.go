package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// ErrNotFound reports a record that does not exist or has expired.
var ErrNotFound = errors.New("store: not found")

// ErrConflict reports that UpdateRecord kept losing to concurrent writers and
// gave up; the caller may retry the whole operation.
var ErrConflict = errors.New("store: concurrent update conflict")

// DB is a handle on the IdP database. It is safe for concurrent use.
type DB struct {
	dialect dialect
	logger  *slog.Logger
	// write serves every statement that writes. For SQLite it holds a single
	// connection, so writers queue in Go rather than spin on SQLITE_BUSY.
	write *sql.DB
	// read serves plain reads; for SQLite a pool of read-only connections that
	// run beside the writer thanks to WAL. For a server database it is write.
	read *sql.DB

	q     queries
	stmts []*sql.Stmt

	// dir is the SQLite file's directory, whose free space Ready checks;
	// "" for a server database.
	dir   string
	ready readyState

	// group commits units of work together (SQLite); nil: a
	// transaction per unit (PostgreSQL).
	group *groupCommitter
	// counts is shared with the counting connections of both pools (Stats).
	counts *counters
}

// queries are the statements on the hot path, prepared once at Open.
type queries struct {
	putRecord, getRecord, takeRecord, deleteRecord *sql.Stmt
	getRecordFull                                  *sql.Stmt
	lockRecord, casRecord                          *sql.Stmt

	hitCounter, undoCounter, getCounter, resetCounter *sql.Stmt

	findSession, commitSession, deleteSession, unbindSession, allSessions, bindSession *sql.Stmt

	appendAudit *sql.Stmt
}

// open finishes a DB whose pools are configured: migrate, then prepare.
func open(ctx context.Context, d dialect, write, read *sql.DB, counts *counters, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{dialect: d, logger: logger, write: write, read: read, counts: counts}
	if err := migrate(ctx, write, d, logger); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := db.prepare(ctx); err != nil {
		db.closeStmts()
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	return db, nil
}

func (db *DB) prepare(ctx context.Context) error {
	var firstErr error
	prep := func(pool *sql.DB, query string) *sql.Stmt {
		if firstErr != nil {
			return nil
		}
		s, err := pool.PrepareContext(ctx, query)
		if err != nil {
			firstErr = fmt.Errorf("%w\n%s", err, query)
			return nil
		}
		db.stmts = append(db.stmts, s)
		return s
	}
	w, r := db.write, db.read
	db.q = queries{
		putRecord:     prep(w, qPutRecord),
		getRecord:     prep(r, qGetRecord),
		getRecordFull: prep(r, qGetRecordFull),
		takeRecord:    prep(w, qTakeRecord),
		deleteRecord:  prep(w, qDeleteRecord),
		lockRecord:    prep(w, qLockRecord+db.dialect.forUpdate),
		casRecord:     prep(w, qCASRecord),

		hitCounter:   prep(w, qHitCounter),
		undoCounter:  prep(w, qUndoCounter),
		getCounter:   prep(r, qGetCounter),
		resetCounter: prep(w, qResetCounter),

		findSession:   prep(r, qFindSession),
		commitSession: prep(w, qCommitSession),
		deleteSession: prep(w, qDeleteSession),
		unbindSession: prep(w, qUnbindSession),
		allSessions:   prep(r, qAllSessions),
		bindSession:   prep(w, qBindSession),

		appendAudit: prep(w, qAppendAudit),
	}
	return firstErr
}

func (db *DB) closeStmts() {
	for _, s := range db.stmts {
		_ = s.Close()
	}
	db.stmts = nil
}

// Close releases the database. Calls in flight may fail.
func (db *DB) Close() error {
	if db.group != nil {
		db.group.close()
	}
	db.closeStmts()
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Ping checks that the database answers, for readiness probes.
func (db *DB) Ping(ctx context.Context) error {
	for _, pool := range []*sql.DB{db.write, db.read} {
		var one int
		if err := pool.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
			return fmt.Errorf("store: ping: %w", err)
		}
	}
	return nil
}

// DeleteExpired removes records and sessions that expired at or before now
// and counters whose window ended, and returns how many it removed. It also
// drops session-user bindings whose session is gone (not counted). The
// audit log is left alone; Sweep also prunes it.
//
// Every process sharing a database may call it on its own schedule: where
// the dialect has a sweep lock, a call that finds another process sweeping
// returns 0 at once and leaves the work to it.
func (db *DB) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	res, err := db.Sweep(ctx, now, time.Time{})
	return res.Records + res.Counters + res.Sessions, err
}

// SweepResult counts the rows one Sweep removed, by table.
type SweepResult struct {
	Records, Counters, Sessions, Bindings, Audit int64
	// Skipped: another process holds the sweep lock and does the work.
	Skipped bool
}

// Sweep is DeleteExpired that also removes audit events that occurred
// before auditBefore (none when it is zero) and reports what it removed
// per table.
func (db *DB) Sweep(ctx context.Context, now, auditBefore time.Time) (SweepResult, error) {
	if db.dialect.sweepTryLock == "" {
		return db.sweep(ctx, db.write, now, auditBefore)
	}
	// The lock belongs to a session, so the sweep keeps one connection.
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return SweepResult{}, fmt.Errorf("store: delete expired: %w", err)
	}
	defer conn.Close()
	var mine bool
	if err := conn.QueryRowContext(ctx, db.dialect.sweepTryLock).Scan(&mine); err != nil {
		return SweepResult{}, fmt.Errorf("store: delete expired: lock: %w", err)
	}
	if !mine {
		db.logger.DebugContext(ctx, "store: another process is deleting expired rows; skipped")
		return SweepResult{Skipped: true}, nil
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), db.dialect.sweepUnlock); err != nil {
			// A pooled connection must not keep the lock: drop it, which
			// releases the lock on the server.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return db.sweep(ctx, conn, now, auditBefore)
}

// execer is a pool or a single connection.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (db *DB) sweep(ctx context.Context, x execer, now, auditBefore time.Time) (SweepResult, error) {
	n := nanos(now)
	var res SweepResult
	// Separate short statements rather than one transaction: a large backlog
	// must not hold the SQLite writer away from logins for long.
	steps := []struct {
		query string
		args  []any
		count *int64
	}{
		{`DELETE FROM records WHERE expires_at <= $1`, []any{n}, &res.Records},
		{`DELETE FROM counters WHERE reset_at <= $1`, []any{n}, &res.Counters},
		{`DELETE FROM sessions WHERE expiry <= $1`, []any{n}, &res.Sessions},
		// A binding may precede its session row by the length of one request (scs
		// commits at the end), so only bindings older than that grace are orphans.
		{`DELETE FROM session_users
WHERE bound_at <= $1 AND NOT EXISTS (
	SELECT 1 FROM sessions WHERE sessions.token = session_users.token AND sessions.expiry > $2)`,
			[]any{nanos(now.Add(-bindingGrace)), n}, &res.Bindings},
	}
	if !auditBefore.IsZero() {
		steps = append(steps, struct {
			query string
			args  []any
			count *int64
		}{`DELETE FROM audit_log WHERE occurred_at < $1`, []any{nanos(auditBefore)}, &res.Audit})
	}
	for _, st := range steps {
		r, err := x.ExecContext(ctx, st.query, st.args...)
		if err != nil {
			return res, fmt.Errorf("store: delete expired: %w", err)
		}
		if *st.count, err = r.RowsAffected(); err != nil {
			return res, fmt.Errorf("store: delete expired: %w", err)
		}
	}
	return res, nil
}

// bindingGrace is how long a session-user binding may exist without its
// session row before DeleteExpired treats it as an orphan.
const bindingGrace = time.Hour

// Times are stored as Unix nanoseconds so that comparisons are plain integer
// comparisons in every dialect. Times beyond int64 nanoseconds (before 1678 or
// after 2262) are clamped, which keeps "never expires" style values ordered.
var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

func nanos(t time.Time) int64 {
	switch {
	case t.Before(minNanosTime):
		return math.MinInt64
	case t.After(maxNanosTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// inTx runs fn in a write transaction, committing if fn returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
