package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/campusidp/campusidp/internal/testpg"
	"github.com/campusidp/campusidp/store"
)

// TestIsUnavailable sorts real driver errors: outages (connection refused,
// read-only, disk full) from mistakes (bad SQL, not found).
func TestIsUnavailable(t *testing.T) {
	ctx := context.Background()
	pgErr := func(t *testing.T, dsn, query string) error {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = db.ExecContext(cctx, query)
		if err == nil {
			t.Fatalf("%s: no error", query)
		}
		return err
	}
	_ = stdlib.GetDefaultDriver()

	cases := []struct {
		name string
		err  func(t *testing.T) error
		want bool
	}{
		{"postgres refused", func(t *testing.T) error {
			return pgErr(t, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", "SELECT 1")
		}, true},
		{"postgres read-only (25006)", func(t *testing.T) error {
			dsn := testpg.DSN(t)
			return pgErr(t, dsn+"&default_transaction_read_only=on", "CREATE TABLE ro (x int)")
		}, true},
		{"postgres syntax error", func(t *testing.T) error {
			return pgErr(t, testpg.DSN(t), "SELEKT 1")
		}, false},
		{"sqlite full", func(t *testing.T) error {
			db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "idp.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// A page limit is a disk that ends where the file is now.
			if err := db.LimitPagesForTest(ctx); err != nil {
				t.Fatal(err)
			}
			big := []byte(strings.Repeat("x", 64<<10))
			for i := range 1000 {
				err := db.PutRecord(ctx, "t", fmt.Sprint(i), big, time.Now().Add(time.Hour))
				if err != nil {
					return err
				}
			}
			t.Fatal("the database never filled up")
			return nil
		}, true},
		{"redis refused", func(t *testing.T) error {
			_, err := store.OpenRedisSessions(ctx, store.RedisConfig{Address: "127.0.0.1:1", Timeout: time.Second}, nil)
			return err
		}, true},
		{"not found", func(*testing.T) error { return fmt.Errorf("load: %w", store.ErrNotFound) }, false},
		{"plain bug", func(*testing.T) error { return errors.New("nil map") }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.err(t)
			if got := store.IsUnavailable(err); got != c.want {
				t.Fatalf("IsUnavailable(%v) = %v, want %v", err, got, c.want)
			}
			if got := errors.Is(store.Unavailable(err), store.ErrUnavailable); got != c.want {
				t.Fatalf("errors.Is(Unavailable(%v), ErrUnavailable) = %v, want %v", err, got, c.want)
			}
		})
	}
}
