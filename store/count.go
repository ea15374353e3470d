package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync/atomic"
)

// Stats counts the work the store has sent to its database since Open.
// They are counted on the connections themselves (a wrapped database/sql
// driver), so every statement is seen whichever method issued it.
type Stats struct {
	// WriteTransactions: committed transactions that ran at least one
	// write statement, plus write statements run outside a transaction
	// (each commits on its own). This is what queues on SQLite's single
	// writer and what costs a commit (a WAL append, or a PostgreSQL
	// commit record).
	WriteTransactions int64
	// Statements: every statement executed, reads and writes, prepared
	// or not. BEGIN, COMMIT, ROLLBACK and savepoints are not statements
	// here.
	Statements int64
	// WriteStatements: the statements that write (INSERT, UPDATE, DELETE,
	// DDL, ...), whether or not their transaction committed.
	WriteStatements int64
}

// Stats returns the counts since Open. It is cheap (three atomic loads) and
// safe for concurrent use.
func (db *DB) Stats() Stats {
	c := db.counts
	if c == nil {
		return Stats{}
	}
	return Stats{
		WriteTransactions: c.writeTx.Load(),
		Statements:        c.stmts.Load(),
		WriteStatements:   c.writeStmts.Load(),
	}
}

// counters are shared by every connection of one DB (both SQLite pools).
type counters struct {
	writeTx, stmts, writeStmts atomic.Int64
}

// stmtKind sorts statements by their leading keyword.
type stmtKind uint8

const (
	kindRead    stmtKind = iota
	kindWrite            // changes data or schema
	kindControl          // transaction control: not counted
)

// classify reads the first keyword of query, after blanks and comments.
// Anything that is not a known writing or control keyword counts as a read
// (SELECT, VALUES, PRAGMA, EXPLAIN, SHOW, ...), so SELECT ... FOR UPDATE
// and advisory-lock selects are reads: they change no row.
func classify(query string) stmtKind {
	word := firstWord(query)
	switch word {
	case "INSERT", "UPDATE", "DELETE", "REPLACE", "UPSERT", "MERGE", "TRUNCATE", "COPY",
		"CREATE", "DROP", "ALTER", "REINDEX", "VACUUM", "COMMENT", "GRANT", "REVOKE":
		return kindWrite
	case "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "ABORT":
		return kindControl
	case "WITH":
		// A common table expression leads a read or a write; the writing
		// verbs appear as words of their own.
		if hasWriteVerb(query) {
			return kindWrite
		}
	}
	return kindRead
}

// firstWord returns the first keyword of query in upper case (at most 9
// letters, enough for the longest keyword above), skipping blanks, "--"
// line comments and "/* */" comments.
func firstWord(q string) string {
	i := 0
	for i < len(q) {
		switch c := q[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(' || c == ';':
			i++
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			i += 2
			for i+1 < len(q) && (q[i] != '*' || q[i+1] != '/') {
				i++
			}
			i += 2
		default:
			var buf [9]byte
			n := 0
			for ; i < len(q) && n < len(buf); i++ {
				c := q[i]
				if c >= 'a' && c <= 'z' {
					c -= 'a' - 'A'
				}
				if c < 'A' || c > 'Z' {
					break
				}
				buf[n] = c
				n++
			}
			return string(buf[:n])
		}
	}
	return ""
}

// hasWriteVerb reports whether INSERT, UPDATE or DELETE appears as a word
// in q (case-insensitive). Used only for WITH statements.
func hasWriteVerb(q string) bool {
	isLetter := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
	for i := 0; i+6 <= len(q); i++ {
		if i > 0 && isLetter(q[i-1]) {
			continue
		}
		for _, verb := range [...]string{"INSERT", "UPDATE", "DELETE"} {
			if i+len(verb) > len(q) || !equalFoldASCII(q[i:i+len(verb)], verb) {
				continue
			}
			if j := i + len(verb); j == len(q) || !isLetter(q[j]) {
				return true
			}
		}
	}
	return false
}

func equalFoldASCII(s, upper string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// countingConnector opens connections that count their statements into c.
type countingConnector struct {
	base driver.Connector
	c    *counters
}

func (cc countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := cc.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{conn: conn, c: cc.c}, nil
}

func (cc countingConnector) Driver() driver.Driver { return cc.base.Driver() }

// countingConn wraps one driver connection. database/sql uses a connection
// from one goroutine at a time (it holds the connection's lock around every
// driver call), so the transaction state needs no locking of its own; only
// the shared counters are atomic.
type countingConn struct {
	conn driver.Conn
	c    *counters
	// inTx: a transaction is open on this connection; txWrites: it has run
	// a write statement.
	inTx, txWrites bool
}

// The optional interfaces both drivers implement are all forwarded, so
// wrapping changes nothing but the counts (context cancellation, session
// reset, validation, argument checking).
var (
	_ driver.Conn               = (*countingConn)(nil)
	_ driver.ConnBeginTx        = (*countingConn)(nil)
	_ driver.ConnPrepareContext = (*countingConn)(nil)
	_ driver.ExecerContext      = (*countingConn)(nil)
	_ driver.QueryerContext     = (*countingConn)(nil)
	_ driver.Pinger             = (*countingConn)(nil)
	_ driver.SessionResetter    = (*countingConn)(nil)
	_ driver.Validator          = (*countingConn)(nil)
	_ driver.NamedValueChecker  = (*countingConn)(nil)

	_ driver.StmtExecContext   = (*countingStmt)(nil)
	_ driver.StmtQueryContext  = (*countingStmt)(nil)
	_ driver.NamedValueChecker = (*countingStmt)(nil)
)

// Unwrap returns the driver's own connection (modernc.org/sqlite's Limit
// and any conn.Raw user look through wrappers this way).
func (cc *countingConn) Unwrap() driver.Conn { return cc.conn }

// executed counts one statement of kind k that the driver ran; ok reports
// whether it succeeded (an autocommit write commits only then).
func (cc *countingConn) executed(k stmtKind, ok bool) {
	if k == kindControl {
		return
	}
	cc.c.stmts.Add(1)
	if k != kindWrite {
		return
	}
	cc.c.writeStmts.Add(1)
	if cc.inTx {
		cc.txWrites = true
	} else if ok {
		cc.c.writeTx.Add(1)
	}
}

func (cc *countingConn) Prepare(query string) (driver.Stmt, error) {
	return cc.PrepareContext(context.Background(), query)
}

func (cc *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var s driver.Stmt
	var err error
	if p, ok := cc.conn.(driver.ConnPrepareContext); ok {
		s, err = p.PrepareContext(ctx, query)
	} else {
		s, err = cc.conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &countingStmt{stmt: s, conn: cc, kind: classify(query)}, nil
}

func (cc *countingConn) Close() error { return cc.conn.Close() }

func (cc *countingConn) Begin() (driver.Tx, error) {
	return cc.BeginTx(context.Background(), driver.TxOptions{})
}

func (cc *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var tx driver.Tx
	var err error
	if b, ok := cc.conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = cc.conn.Begin() //nolint:staticcheck // the fallback database/sql itself uses
	}
	if err != nil {
		return nil, err
	}
	cc.inTx, cc.txWrites = true, false
	return &countingTx{tx: tx, conn: cc}, nil
}

func (cc *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := cc.conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip // database/sql prepares it instead, counted there
	}
	res, err := e.ExecContext(ctx, query, args)
	if err != driver.ErrSkip {
		cc.executed(classify(query), err == nil)
	}
	return res, err
}

func (cc *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := cc.conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if err != driver.ErrSkip {
		cc.executed(classify(query), err == nil)
	}
	return rows, err
}

func (cc *countingConn) Ping(ctx context.Context) error {
	if p, ok := cc.conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (cc *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := cc.conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (cc *countingConn) IsValid() bool {
	if v, ok := cc.conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (cc *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := cc.conn.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip // database/sql's default conversion
}

// countingTx ends the connection's transaction and counts it if it wrote.
type countingTx struct {
	tx   driver.Tx
	conn *countingConn
}

func (t *countingTx) Commit() error {
	err := t.tx.Commit()
	if err == nil && t.conn.txWrites {
		t.conn.c.writeTx.Add(1)
	}
	t.conn.inTx, t.conn.txWrites = false, false
	return err
}

func (t *countingTx) Rollback() error {
	t.conn.inTx, t.conn.txWrites = false, false
	return t.tx.Rollback()
}

// countingStmt is a prepared statement of a countingConn; its kind is read
// once, when it is prepared.
type countingStmt struct {
	stmt driver.Stmt
	conn *countingConn
	kind stmtKind
}

func (s *countingStmt) Close() error  { return s.stmt.Close() }
func (s *countingStmt) NumInput() int { return s.stmt.NumInput() }

func (s *countingStmt) Exec(args []driver.Value) (driver.Result, error) {
	res, err := s.stmt.Exec(args) //nolint:staticcheck // forwarded as database/sql would call it
	s.conn.executed(s.kind, err == nil)
	return res, err
}

func (s *countingStmt) Query(args []driver.Value) (driver.Rows, error) {
	rows, err := s.stmt.Query(args) //nolint:staticcheck // forwarded as database/sql would call it
	s.conn.executed(s.kind, err == nil)
	return rows, err
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	var res driver.Result
	var err error
	if e, ok := s.stmt.(driver.StmtExecContext); ok {
		res, err = e.ExecContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = namedToValues(args); err != nil {
			return nil, err
		}
		res, err = s.stmt.Exec(vals) //nolint:staticcheck // the driver has nothing else
	}
	s.conn.executed(s.kind, err == nil)
	return res, err
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	var rows driver.Rows
	var err error
	if q, ok := s.stmt.(driver.StmtQueryContext); ok {
		rows, err = q.QueryContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = namedToValues(args); err != nil {
			return nil, err
		}
		rows, err = s.stmt.Query(vals) //nolint:staticcheck // the driver has nothing else
	}
	s.conn.executed(s.kind, err == nil)
	return rows, err
}

// CheckNamedValue keeps database/sql's order: the statement's checker, else
// the connection's, else the default conversion.
func (s *countingStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := s.stmt.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return s.conn.CheckNamedValue(nv)
}

func namedToValues(named []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(named))
	for i, nv := range named {
		if nv.Name != "" {
			return nil, errNamedArgs
		}
		vals[i] = nv.Value
	}
	return vals, nil
}

var errNamedArgs = errors.New("store: the driver does not support named arguments")
