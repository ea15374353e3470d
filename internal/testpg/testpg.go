// Package testpg gives each test a private, empty schema on the PostgreSQL
// server the test command provides (127.0.0.1:5432, user postgres, trust
// authentication, database test), and drops it when the test ends.
//
// IDP_TEST_POSTGRES overrides the server's DSN. When the server does not
// answer, tests are skipped on a developer machine but fail under CI=true,
// so a broken CI setup never passes silently.
package testpg

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// DefaultDSN is the server scripts/test.sh starts.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var (
	adminOnce sync.Once
	admin     *sql.DB
	adminErr  error
)

// ServerDSN returns the DSN of the test server (without a schema).
func ServerDSN() string {
	if dsn := os.Getenv("IDP_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return DefaultDSN
}

func adminDB() (*sql.DB, error) {
	adminOnce.Do(func() {
		cfg, err := pgx.ParseConfig(ServerDSN())
		if err != nil {
			adminErr = err
			return
		}
		cfg.ConnectTimeout = 5 * time.Second
		admin = stdlib.OpenDB(*cfg)
		admin.SetMaxOpenConns(4)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := admin.PingContext(ctx); err != nil {
			adminErr = err
		}
	})
	return admin, adminErr
}

// unavailable skips or fails the test for a server that does not answer.
func unavailable(t testing.TB, err error) {
	t.Helper()
	msg := fmt.Sprintf("PostgreSQL at %s is not available (scripts/test.sh starts one): %v", redact(ServerDSN()), err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// DSN creates a fresh schema and returns a DSN whose search_path selects
// it. The schema and everything in it are dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	db, err := adminDB()
	if err != nil {
		unavailable(t, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testpg: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("testpg: drop schema %s: %v", schema, err)
		}
	})
	return WithSchema(ServerDSN(), schema)
}

// WithSchema returns dsn with its search_path set to schema.
func WithSchema(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(dsn) + " search_path=" + schema
}

// redact hides a password in a URL DSN for messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return dsn
}
