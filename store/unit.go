package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// A Unit is one request's unit of work. While a context carrying it (from
// BeginUnit) is passed to the DB's methods, the changes they make are
// collected instead of written: records put, updated and deleted, browser
// sessions committed and deleted, session bindings, audit events and
// counter resets. Commit then writes all of them in one transaction, so a
// request's state changes and the audit rows describing them exist
// together or not at all, and a login costs one write transaction instead
// of one per call.
//
// Reads through the unit hit the database once per record and see the
// unit's own writes. What guards a budget is never deferred: HitCounter,
// HitCounters, AddRecord, TakeRecord and the OIDC methods run at once, as
// without a unit, so attempts stay counted however the request ends
// (UndoCounter, which gives an attempt back, waits for the commit). UpdateRecord is deferred but stays a compare-and-swap: the
// commit fails with ErrConflict (and writes nothing) when another writer
// changed the record after this unit read it. An update that spends a
// budget other requests must see at once (a one-time code's tries and its
// single use) is made with a context from SpendAtOnce: it is written
// immediately, a lost race retried, as without a unit.
//
// After Commit (or a failed one) the context's calls go to the database
// directly again. A Unit is safe for concurrent use, though a request
// normally uses it from one goroutine.
type Unit struct {
	db *DB

	mu       sync.Mutex
	done     bool
	records  map[recordKey]*unitRecord
	order    []recordKey // first change first, for a stable statement order
	sessions map[string]*unitSession
	sessOrd  []string
	binds    map[string]unitBind
	bindOrd  []string
	resets   map[string]bool
	resetOrd []string
	undos    []unitUndo
	audit    []AuditEvent
	after    []func()
	// execs are other statements, in call order (security keys).
	execs []unitExec
	// parts are optional parts (Part), each written under a savepoint
	// after the unit's own changes.
	parts []*unitPart
}

type unitExec struct {
	what  string
	want1 bool // the statement must affect one row, or the commit fails
	query string
	args  []any
}

// deferExec adds a statement to ctx's unit, to run at commit, and reports
// whether there was a unit (false: the caller runs it now). With want1 a
// statement that affects no row fails the commit with ErrConflict: the
// row the caller checked changed before the commit.
func (db *DB) deferExec(ctx context.Context, what string, want1 bool, query string, args ...any) bool {
	u := db.unit(ctx)
	if u == nil {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.execs = append(u.execs, unitExec{what: what, want1: want1, query: query, args: args})
	return true
}

type unitPart struct {
	unit    *Unit
	dropped func(error)
	err     error
}

// UnitOfWork is what a request-scoped unit offers its owner (the HTTP
// middleware): Commit writes the collected changes in one transaction;
// OnCommit registers work that must follow a successful commit only (an
// audit sink seeing an event the log really holds).
type UnitOfWork interface {
	Commit(ctx context.Context) error
	OnCommit(ctx context.Context, fn func())
}

var _ UnitOfWork = (*Unit)(nil)

type recordKey struct{ kind, id string }

// unitRecord is what the unit knows of one record.
type unitRecord struct {
	// known: the value below is the record's current state for this unit
	// (read from the database, or written by the unit).
	known   bool
	exists  bool
	value   []byte
	expires time.Time
	// version is the row's version when it was read (0: not read).
	version int64

	// op is the change to write at commit (opNone: only cached).
	op int
	// guard, when non-zero, is the version the row must still have at
	// commit: the unit updated it from that version (compare-and-swap).
	guard int64
}

const (
	opNone = iota
	opPut
	opUpdate // value only, expiry kept
	opDelete
)

type unitSession struct {
	deleted bool
	data    []byte
	expiry  time.Time
}

type unitBind struct {
	user string
	at   time.Time
}

type unitUndo struct {
	key string
	now time.Time
}

type unitCtxKey struct{}

// BeginUnit returns ctx carrying a new unit of work on db, and the unit.
// Pass the returned context to every call the request makes; commit the
// unit once, before the response is written.
func (db *DB) BeginUnit(ctx context.Context) (context.Context, UnitOfWork) {
	u := &Unit{db: db}
	return context.WithValue(ctx, unitCtxKey{}, u), u
}

// unit returns the open unit of db carried by ctx, or nil: calls then go to
// the database directly.
func (db *DB) unit(ctx context.Context) *Unit {
	u, _ := ctx.Value(unitCtxKey{}).(*Unit)
	if u == nil || u.db != db {
		return nil
	}
	u.mu.Lock()
	done := u.done
	u.mu.Unlock()
	if done {
		return nil
	}
	return u
}

// OnCommit runs fn after the unit commits successfully; with no open unit
// in ctx (it committed already, or there never was one) fn runs now.
func (u *Unit) OnCommit(_ context.Context, fn func()) {
	u.mu.Lock()
	if !u.done {
		u.after = append(u.after, fn)
		u.mu.Unlock()
		return
	}
	u.mu.Unlock()
	fn()
}

// OnCommit runs fn once the changes made through ctx are committed: after
// the unit of work in ctx commits, or now when there is none.
func OnCommit(ctx context.Context, fn func()) {
	if u, _ := ctx.Value(unitCtxKey{}).(*Unit); u != nil {
		u.OnCommit(ctx, fn)
		return
	}
	fn()
}

// pending reports whether the unit has changes to write.
func (u *Unit) pending() bool {
	for _, k := range u.order {
		if u.records[k].op != opNone {
			return true
		}
	}
	return len(u.sessOrd) > 0 || len(u.bindOrd) > 0 || len(u.resetOrd) > 0 || len(u.undos) > 0 || len(u.audit) > 0 ||
		len(u.execs) > 0 || len(u.parts) > 0
}

// Part runs fn with a context whose changes form an optional part of the
// request's unit of work: a side effect the request goes on without (a
// browser remembered at login). The part is written in the same
// transaction as the rest, under a savepoint of its own; if that fails,
// only the part is rolled back, dropped is called with the reason before
// the response goes out, and its OnCommit functions do not run. An error
// from fn discards the part and is returned.
//
// The part reads the database, not the request's uncommitted changes: it
// must not touch records the request itself changes. Without a unit in
// ctx, fn's changes are written at once, as every call is.
func Part(ctx context.Context, fn func(ctx context.Context) error, dropped func(error)) error {
	u, _ := ctx.Value(unitCtxKey{}).(*Unit)
	if u == nil || u.db.unit(ctx) == nil {
		return fn(ctx)
	}
	child := &Unit{db: u.db}
	if err := fn(context.WithValue(ctx, unitCtxKey{}, child)); err != nil {
		return err
	}
	child.done = true
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return errors.New("store: part of a unit that was committed already")
	}
	u.parts = append(u.parts, &unitPart{unit: child, dropped: dropped})
	return nil
}

// Commit writes the unit's changes in one transaction (none when there are
// none) and closes the unit. A record changed concurrently since the unit
// updated it fails the whole commit with ErrConflict; nothing is written.
func (u *Unit) Commit(ctx context.Context) error {
	u.mu.Lock()
	if u.done {
		u.mu.Unlock()
		return nil
	}
	u.done = true
	u.mu.Unlock()
	if u.pending() {
		if err := u.db.commitUnit(ctx, u); err != nil {
			return err
		}
	}
	u.committed()
	return nil
}

// committed runs what follows a successful commit: the dropped parts'
// callbacks, then the OnCommit functions of the unit and its kept parts.
func (u *Unit) committed() {
	for _, p := range u.parts {
		if p.err != nil {
			if p.dropped != nil {
				p.dropped(p.err)
			}
			continue
		}
		p.unit.committed()
	}
	for _, fn := range u.after {
		fn()
	}
}

// commitUnit writes u: with the group of units waiting (SQLite), or in a
// transaction of its own.
func (db *DB) commitUnit(ctx context.Context, u *Unit) error {
	if db.group != nil {
		return db.group.commit(ctx, u)
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error { return u.apply(ctx, tx) })
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return err
		}
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

const (
	qCASPutRecord = `UPDATE records SET value = $1, expires_at = $2, version = version + 1
WHERE kind = $3 AND id = $4 AND version = $5`
	qCASDeleteRecord = `DELETE FROM records WHERE kind = $1 AND id = $2 AND version = $3`
)

// apply executes u's changes in tx: records, then sessions and their
// bindings, counter resets and the audit events.
func (u *Unit) apply(ctx context.Context, tx *sql.Tx) error {
	db := u.db
	stmt := func(s *sql.Stmt) *sql.Stmt { return tx.StmtContext(ctx, s) }
	mustOne := func(res sql.Result, k recordKey) error {
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%w: record %s changed by another request", ErrConflict, k.kind)
		}
		return nil
	}
	for _, k := range u.order {
		r := u.records[k]
		value := r.value
		if value == nil {
			value = []byte{}
		}
		switch {
		case r.op == opPut && r.guard == 0:
			if _, err := stmt(db.q.putRecord).ExecContext(ctx, k.kind, k.id, value, nanos(r.expires)); err != nil {
				return fmt.Errorf("put record %s: %w", k.kind, err)
			}
		case r.op == opPut:
			res, err := tx.ExecContext(ctx, qCASPutRecord, value, nanos(r.expires), k.kind, k.id, r.guard)
			if err != nil {
				return fmt.Errorf("update record %s: %w", k.kind, err)
			}
			if err := mustOne(res, k); err != nil {
				return err
			}
		case r.op == opUpdate:
			res, err := stmt(db.q.casRecord).ExecContext(ctx, value, k.kind, k.id, r.guard)
			if err != nil {
				return fmt.Errorf("update record %s: %w", k.kind, err)
			}
			if err := mustOne(res, k); err != nil {
				return err
			}
		case r.op == opDelete && r.guard == 0:
			if _, err := stmt(db.q.deleteRecord).ExecContext(ctx, k.kind, k.id); err != nil {
				return fmt.Errorf("delete record %s: %w", k.kind, err)
			}
		case r.op == opDelete:
			res, err := tx.ExecContext(ctx, qCASDeleteRecord, k.kind, k.id, r.guard)
			if err != nil {
				return fmt.Errorf("delete record %s: %w", k.kind, err)
			}
			if err := mustOne(res, k); err != nil {
				return err
			}
		}
	}
	for _, x := range u.execs {
		res, err := tx.ExecContext(ctx, x.query, x.args...)
		if err != nil {
			return fmt.Errorf("%s: %w", x.what, err)
		}
		if x.want1 {
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("%s: %w", x.what, err)
			} else if n != 1 {
				return fmt.Errorf("%s: %w: changed by another request", x.what, ErrConflict)
			}
		}
	}
	for _, token := range u.sessOrd {
		s := u.sessions[token]
		if s.deleted {
			if _, err := stmt(db.q.deleteSession).ExecContext(ctx, token); err != nil {
				return fmt.Errorf("delete session: %w", err)
			}
			if _, err := stmt(db.q.unbindSession).ExecContext(ctx, token); err != nil {
				return fmt.Errorf("delete session: %w", err)
			}
			continue
		}
		data := s.data
		if data == nil {
			data = []byte{}
		}
		if _, err := stmt(db.q.commitSession).ExecContext(ctx, token, data, nanos(s.expiry)); err != nil {
			return fmt.Errorf("commit session: %w", err)
		}
	}
	for _, token := range u.bindOrd {
		b, ok := u.binds[token]
		if !ok {
			continue // its session was deleted later in the request
		}
		if _, err := stmt(db.q.bindSession).ExecContext(ctx, token, b.user, b.at.UnixNano()); err != nil {
			return fmt.Errorf("bind session user: %w", err)
		}
	}
	if err := execKeys(ctx, tx, `UPDATE counters SET hits = hits - 1 WHERE hits > 0 AND reset_at > $1 AND counter_key IN `,
		u.undoGroups()); err != nil {
		return fmt.Errorf("undo counter: %w", err)
	}
	if len(u.resetOrd) > 0 {
		if err := execKeys(ctx, tx, `DELETE FROM counters WHERE counter_key IN `,
			[]keyGroup{{keys: u.resetOrd}}); err != nil {
			return fmt.Errorf("reset counter: %w", err)
		}
	}
	if len(u.audit) > 0 {
		// One statement for the request's events, in order (ids increase).
		var q strings.Builder
		q.WriteString(`INSERT INTO audit_log
	(occurred_at, event_type, actor, subject, client_ip, user_agent, request_id, detail) VALUES `)
		args := make([]any, 0, 8*len(u.audit))
		for i, e := range u.audit {
			detail, err := auditDetail(e)
			if err != nil {
				return err
			}
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8)
			args = append(args, nanos(e.Time), e.Type, e.Actor, e.Subject, e.ClientIP, e.UserAgent, e.RequestID, detail)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("append audit %s: %w", u.audit[0].Type, err)
		}
	}
	for i, p := range u.parts {
		p.err = applySavepoint(ctx, tx, fmt.Sprintf("part_%d", i), p.unit.apply)
		if p.err != nil && isTxBroken(p.err) {
			return p.err
		}
	}
	return nil
}

// applySavepoint runs apply under the savepoint name; when it fails, only
// its statements are rolled back and the error is returned.
func applySavepoint(ctx context.Context, tx *sql.Tx, name string, apply func(context.Context, *sql.Tx) error) error {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return txBroken{err}
	}
	if err := apply(ctx, tx); err != nil {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+name); rerr != nil {
			return txBroken{errors.Join(err, rerr)}
		}
		if _, rerr := tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name); rerr != nil {
			return txBroken{errors.Join(err, rerr)}
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name); err != nil {
		return txBroken{err}
	}
	return nil
}

// txBroken is a failure of the savepoint machinery itself: the enclosing
// transaction cannot go on.
type txBroken struct{ err error }

func (e txBroken) Error() string { return e.err.Error() }
func (e txBroken) Unwrap() error { return e.err }

func isTxBroken(err error) bool {
	var b txBroken
	return errors.As(err, &b)
}

func auditDetail(e AuditEvent) (sql.NullString, error) {
	if len(e.Detail) == 0 {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(e.Detail)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("append audit: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// The unit's side of the DB's methods. Each is called with u.mu held by
// none; they lock it themselves.

// record returns the unit's entry for k, reading the row once.
func (u *Unit) record(ctx context.Context, k recordKey, now time.Time) (*unitRecord, error) {
	if r := u.records[k]; r != nil && r.known {
		return r, nil
	}
	var value []byte
	var expires, version int64
	err := u.db.q.getRecordFull.QueryRowContext(ctx, k.kind, k.id, nanos(now)).Scan(&value, &expires, &version)
	r := u.entry(k)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		r.known, r.exists = true, false
	case err != nil:
		return nil, fmt.Errorf("store: get record %s: %w", k.kind, err)
	default:
		r.known, r.exists, r.value, r.expires, r.version = true, true, value, fromNanos(expires), version
	}
	return r, nil
}

// entry returns the unit's entry for k, creating an unknown one.
func (u *Unit) entry(k recordKey) *unitRecord {
	if u.records == nil {
		u.records = map[recordKey]*unitRecord{}
	}
	r := u.records[k]
	if r == nil {
		r = &unitRecord{}
		u.records[k] = r
		u.order = append(u.order, k)
	}
	return r
}

func (u *Unit) live(r *unitRecord, now time.Time) bool {
	return r.exists && r.expires.After(now)
}

func (u *Unit) getRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r, err := u.record(ctx, recordKey{kind, id}, now)
	if err != nil {
		return nil, err
	}
	if !u.live(r, now) {
		return nil, ErrNotFound
	}
	return append([]byte(nil), r.value...), nil
}

func (u *Unit) putRecord(kind, id string, value []byte, expires time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.entry(recordKey{kind, id})
	r.known, r.exists, r.value, r.expires = true, true, append([]byte{}, value...), expires
	r.op = opPut
}

func (u *Unit) deleteRecord(kind, id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.entry(recordKey{kind, id})
	r.known, r.exists, r.value = true, false, nil
	r.op = opDelete
}

func (u *Unit) updateRecord(ctx context.Context, kind, id string, now time.Time, fn func(old []byte) ([]byte, error)) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	r, err := u.record(ctx, recordKey{kind, id}, now)
	if err != nil {
		return err
	}
	if !u.live(r, now) {
		return ErrNotFound
	}
	value, err := fn(append([]byte(nil), r.value...))
	if err != nil {
		return err
	}
	r.value = append([]byte{}, value...)
	if r.op == opNone {
		// First change of a row read from the database: it must still be
		// the version read when the unit commits.
		r.op, r.guard = opUpdate, r.version
	}
	return nil
}

// takeRecord serves TakeRecord for a record the unit has changed; ok is
// false when the unit knows nothing of it and the database must answer.
func (u *Unit) takeRecord(kind, id string, now time.Time) (value []byte, ok bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.records[recordKey{kind, id}]
	if r == nil || r.op == opNone {
		return nil, false, nil
	}
	if !u.live(r, now) {
		return nil, true, ErrNotFound
	}
	value = r.value
	r.exists, r.value, r.op = false, nil, opDelete
	return value, true, nil
}

// holds reports whether the unit has a change of the record to write.
func (u *Unit) holds(kind, id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.records[recordKey{kind, id}]
	return r != nil && r.op != opNone
}

type atOnceKey struct{}

// SpendAtOnce returns ctx for an UpdateRecord that spends a budget
// (a one-time code's tries, its single use): in a unit of work it is
// written at once, in a transaction of its own, and a lost race is
// retried, so parallel requests see it spent before the unit commits.
func SpendAtOnce(ctx context.Context) context.Context {
	return context.WithValue(ctx, atOnceKey{}, true)
}

func spendAtOnce(ctx context.Context) bool {
	v, _ := ctx.Value(atOnceKey{}).(bool)
	return v
}

// forget drops what the unit cached of a record changed behind its back
// (TakeRecord, AddRecord run at once).
func (u *Unit) forget(kind, id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if r := u.records[recordKey{kind, id}]; r != nil && r.op == opNone {
		r.known = false
	}
}

func (u *Unit) commitSession(token string, data []byte, expiry time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.session(token)
	s.deleted, s.data, s.expiry = false, append([]byte{}, data...), expiry
}

func (u *Unit) deleteSession(token string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.session(token)
	s.deleted, s.data = true, nil
	delete(u.binds, token)
}

// findSession answers FindCtx for a session the unit changed.
func (u *Unit) findSession(token string, now time.Time) (data []byte, found, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.sessions[token]
	if s == nil {
		return nil, false, false
	}
	if s.deleted || !s.expiry.After(now) {
		return nil, false, true
	}
	return append([]byte(nil), s.data...), true, true
}

func (u *Unit) session(token string) *unitSession {
	if u.sessions == nil {
		u.sessions = map[string]*unitSession{}
	}
	s := u.sessions[token]
	if s == nil {
		s = &unitSession{}
		u.sessions[token] = s
		u.sessOrd = append(u.sessOrd, token)
	}
	return s
}

func (u *Unit) bindSession(token, userID string, at time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.binds == nil {
		u.binds = map[string]unitBind{}
	}
	if _, ok := u.binds[token]; !ok {
		u.bindOrd = append(u.bindOrd, token)
	}
	u.binds[token] = unitBind{user: userID, at: at}
}

func (u *Unit) resetCounter(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.resets == nil {
		u.resets = map[string]bool{}
	}
	if !u.resets[key] {
		u.resets[key] = true
		u.resetOrd = append(u.resetOrd, key)
	}
}

// takeReset removes a pending reset of key and reports whether there was
// one: a counter call after a reset in the same request must see it done.
func (u *Unit) takeReset(key string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.resets[key] {
		return false
	}
	delete(u.resets, key)
	for i, k := range u.resetOrd {
		if k == key {
			u.resetOrd = append(u.resetOrd[:i], u.resetOrd[i+1:]...)
			break
		}
	}
	return true
}

func (u *Unit) undoCounter(key string, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.undos = append(u.undos, unitUndo{key, now})
}

func (u *Unit) appendAudit(e AuditEvent) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.audit = append(u.audit, e)
}

// keyGroup is one statement's keys; with now set, the statement's $1.
type keyGroup struct {
	now  time.Time
	keys []string
}

// execKeys runs prefix + "($n, …)" once per group, the group's keys as
// the list (after now, when the group has one).
func execKeys(ctx context.Context, tx *sql.Tx, prefix string, groups []keyGroup) error {
	for _, g := range groups {
		var args []any
		if !g.now.IsZero() {
			args = append(args, nanos(g.now))
		}
		var q strings.Builder
		q.WriteString(prefix)
		q.WriteString("(")
		for i, k := range g.keys {
			if i > 0 {
				q.WriteString(", ")
			}
			args = append(args, k)
			fmt.Fprintf(&q, "$%d", len(args))
		}
		q.WriteString(")")
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// undoGroups puts the unit's undos in as few statements as keep each hit
// given back once: consecutive undos of one instant and distinct keys.
func (u *Unit) undoGroups() []keyGroup {
	var groups []keyGroup
	for _, x := range u.undos {
		if n := len(groups); n > 0 && groups[n-1].now.Equal(x.now) && !slices.Contains(groups[n-1].keys, x.key) {
			groups[n-1].keys = append(groups[n-1].keys, x.key)
			continue
		}
		groups = append(groups, keyGroup{now: x.now, keys: []string{x.key}})
	}
	return groups
}
