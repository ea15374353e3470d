package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrUnavailable marks an outage of the storage itself: the database or
// Redis cannot be reached, is read-only or is out of space. Such a failure
// is not the request's fault and not a bug; the caller answers "try again
// later". Errors from this package's drivers are recognised by
// IsUnavailable without being wrapped; Unavailable wraps one so that
// errors.Is(err, ErrUnavailable) holds.
var ErrUnavailable = errors.New("store: unavailable")

// Unavailable returns err wrapped in ErrUnavailable when IsUnavailable
// classifies it as an outage, and err unchanged otherwise.
func Unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !IsUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// IsUnavailable reports whether err, from this package or from a driver it
// uses (pgx, SQLite, redigo), means the storage is out of service rather
// than that the request or the code is wrong. This is the one place where
// driver errors are sorted.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pgUnavailable(pe.Code)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary code is the low byte
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY,
			sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
			return true
		}
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		// Replies that say the server cannot take the command now: a
		// read-only replica, no disk for persistence, no memory, loading.
		code, _, _ := strings.Cut(string(re), " ")
		switch code {
		case "READONLY", "MISCONF", "OOM", "LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN":
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EROFS),
		errors.Is(err, redis.ErrPoolExhausted),
		// A query that outlived its deadline waited on a server that did
		// not answer in time.
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	// redigo reports a connection it closed after an I/O error this way.
	return strings.Contains(err.Error(), "redigo: connection closed")
}

// pgUnavailable sorts PostgreSQL SQLSTATEs: connection failures (class
// 08), a read-only transaction (25006, e.g. a standby or
// default_transaction_read_only), insufficient resources (class 53: disk
// full 53100, out of memory, too many connections), operator intervention
// (class 57P: shutdown, cannot connect now) and system errors (class 58:
// I/O errors).
func pgUnavailable(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), code == "25006", strings.HasPrefix(code, "53"),
		strings.HasPrefix(code, "57P"), strings.HasPrefix(code, "58"):
		return true
	}
	return false
}
