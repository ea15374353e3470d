package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/internal/testpg"
	"github.com/campusidp/campusidp/internal/testredis"
	"github.com/campusidp/campusidp/store"
)

// TestReadyNeedsAWrite: a database that answers SELECT 1 but refuses
// writes (PostgreSQL with default_transaction_read_only) is not ready; a
// writable one, SQLite and Redis are.
func TestReadyNeedsAWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := testpg.DSN(t)
	rw, err := store.OpenPostgres(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if err := rw.Ready(ctx); err != nil {
		t.Fatalf("writable PostgreSQL: Ready = %v", err)
	}

	// The operator's read-only switch, on a server of the test's own.
	pg := testpg.StartPrivate(t)
	ro, err := store.OpenPostgres(ctx, pg.DSN(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	pg.Exec(t, "ALTER SYSTEM SET default_transaction_read_only = on")
	pg.Stop(t)
	pg.Start(t)
	// Pooled connections cut by the restart fail once each.
	for i := 0; ro.Ping(ctx) != nil; i++ {
		if i == 50 {
			t.Fatalf("read-only PostgreSQL does not answer reads: Ping = %v", ro.Ping(ctx))
		}
	}
	err = ro.Ready(ctx)
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "25006") {
		t.Fatalf("read-only PostgreSQL: Ready = %v, want ErrUnavailable for SQLSTATE 25006", err)
	}

	lite, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "idp.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	if err := lite.Ready(ctx); err != nil {
		t.Fatalf("SQLite: Ready = %v", err)
	}

	rs, err := store.OpenRedisSessions(ctx, store.RedisConfig{Address: testredis.Addr(), KeyPrefix: testredis.Prefix(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if err := rs.Ready(ctx); err != nil {
		t.Fatalf("Redis: Ready = %v", err)
	}
}
