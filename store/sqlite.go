package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteBusyTimeoutMS bounds how long a statement waits for a lock held by
// another process (for example an `idp admin` command beside the server);
// within one process writers already queue on the single write connection.
const sqliteBusyTimeoutMS = 5000

// OpenSQLite opens (creating if needed) the SQLite database file at path and
// brings its schema up to date. The file runs in WAL mode so readers never
// wait for the writer.
func OpenSQLite(ctx context.Context, path string, logger *slog.Logger) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: open sqlite: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}

	// One writer connection: SQLite admits one writer at a time anyway, so
	// writers wait their turn in database/sql (in order, honouring ctx) and
	// never see SQLITE_BUSY from each other.
	// _txlock=immediate takes the write lock at BEGIN, so a transaction that
	// reads before it writes cannot fail on a stale snapshot.
	// synchronous=NORMAL is safe in WAL mode: a power cut may lose the last
	// commits but never corrupts the file, and it spares an fsync per commit.
	counts := &counters{}
	write, err := openCountingSQLite(sqliteDSN(abs, map[string][]string{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeoutMS),
			"journal_mode(WAL)",
			"synchronous(NORMAL)",
			"foreign_keys(1)",
		},
		"_txlock": {"immediate"},
	}), counts)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	// Connect now so WAL mode is set before any reader opens the file.
	if err := connectSQLite(ctx, write); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", abs, err)
	}

	read, err := openCountingSQLite(sqliteDSN(abs, map[string][]string{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeoutMS),
			"foreign_keys(1)",
			"query_only(1)",
		},
	}), counts)
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	read.SetConnMaxLifetime(0)
	read.SetConnMaxIdleTime(0)

	db, err := open(ctx, sqliteDialect, write, read, counts, logger)
	if err != nil {
		_ = read.Close()
		_ = write.Close()
		return nil, err
	}
	db.dir = filepath.Dir(abs)
	db.group = newGroupCommitter(db)
	return db, nil
}

// openCountingSQLite is sql.Open("sqlite", dsn) with connections that count
// their statements into counts (DB.Stats).
func openCountingSQLite(dsn string, counts *counters) (*sql.DB, error) {
	base, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(countingConnector{base: base, c: counts}), nil
}

// sqliteDSN builds a file: URI so that any character in the path ('?', '#',
// '%', spaces) reaches SQLite intact.
func sqliteDSN(absPath string, params url.Values) string {
	p := filepath.ToSlash(absPath)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive path, file:/C:/...
	}
	u := url.URL{Path: p}
	return "file:" + u.EscapedPath() + "?" + params.Encode()
}

// connectSQLite opens the first connection. Switching a new file to WAL needs
// an exclusive lock, and when several processes open the same new file at
// once SQLite reports SQLITE_BUSY without waiting (to rule out a deadlock),
// so that case is retried here for as long as busy_timeout would have waited.
func connectSQLite(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeoutMS * time.Millisecond)
	for {
		err := db.PingContext(ctx)
		if err == nil || !isSQLiteBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
		}
	}
}

func isSQLiteBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	primary := se.Code() & 0xff // extended codes keep the primary code in the low byte
	return primary == sqlite3.SQLITE_BUSY || primary == sqlite3.SQLITE_LOCKED
}
