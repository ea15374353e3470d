package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/campusidp/campusidp/internal/testpg"
)

func openPGAt(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := OpenPostgres(context.Background(), dsn, nil)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestMigrationDirectoriesMatch: every migration of one dialect has a twin
// of the same number and name in the other, so a feature's tables exist on
// both engines.
func TestMigrationDirectoriesMatch(t *testing.T) {
	names := func(d dialect) []string {
		ms, err := loadMigrations(d.migrations)
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.file)
		}
		return out
	}
	if lite, pg := names(sqliteDialect), names(postgresDialect); !slices.Equal(lite, pg) {
		t.Fatalf("sqlite migrations %v, postgres migrations %v; every migration needs a twin", lite, pg)
	}
}

func TestPostgresMigrationsAreIdempotent(t *testing.T) {
	ctx := context.Background()
	dsn := testpg.DSN(t)
	want, err := loadMigrations(postgresDialect.migrations)
	if err != nil {
		t.Fatal(err)
	}
	db := openPGAt(t, dsn)
	if err := db.PutRecord(ctx, "k", "id", []byte("kept"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for i := range 2 {
		db := openPGAt(t, dsn)
		if got := appliedVersions(t, db); len(got) != len(want) {
			t.Fatalf("reopen %d: applied versions %v, want each of %d migrations once", i, got, len(want))
		}
		if v, err := db.GetRecord(ctx, "k", "id", time.Now()); err != nil || string(v) != "kept" {
			t.Fatalf("reopen %d: GetRecord = %q, %v; want the data kept", i, v, err)
		}
	}
}

// TestPostgresConcurrentOpenMigratesOnce: instances starting together on an
// empty database wait on the advisory lock; exactly one applies the schema.
func TestPostgresConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := testpg.DSN(t)
	const openers = 6
	dbs := make([]*DB, openers)
	var wg sync.WaitGroup
	for i := range openers {
		wg.Go(func() {
			db, err := OpenPostgres(context.Background(), dsn, nil)
			if err != nil {
				t.Errorf("OpenPostgres: %v", err)
				return
			}
			dbs[i] = db
		})
	}
	wg.Wait()
	for _, db := range dbs {
		if db != nil {
			t.Cleanup(func() { db.Close() })
		}
	}
	if t.Failed() {
		return
	}
	want, _ := loadMigrations(postgresDialect.migrations)
	if got := appliedVersions(t, dbs[0]); len(got) != len(want) {
		t.Fatalf("applied versions %v, want %d", got, len(want))
	}
}

func TestPostgresOpenRefusesNewerSchema(t *testing.T) {
	dsn := testpg.DSN(t)
	db := openPGAt(t, dsn)
	if _, err := db.write.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := OpenPostgres(context.Background(), dsn, nil); !errors.Is(err, ErrSchemaTooNew) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("OpenPostgres on a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

// TestPostgresFailedMigrationChangesNothing: PostgreSQL DDL is
// transactional, so a broken migration leaves no table behind.
func TestPostgresFailedMigrationChangesNothing(t *testing.T) {
	ctx := context.Background()
	db := openPGAt(t, testpg.DSN(t))
	broken := postgresDialect
	broken.migrations = fstest.MapFS{
		"0001_init.sql":   {Data: []byte("CREATE TABLE first (x BIGINT)")},
		"0002_broken.sql": {Data: []byte("CREATE TABLE second (x BIGINT); THIS IS NOT SQL")},
	}
	if _, err := db.write.Exec(`DROP TABLE schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db.write, broken, db.logger); err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Fatalf("migrate with a broken migration: err = %v, want it to name migration 2", err)
	}
	for _, table := range []string{"first", "second", "schema_migrations"} {
		var n int
		if err := db.read.QueryRow(`SELECT count(*) FROM information_schema.tables
WHERE table_schema = current_schema() AND table_name = $1`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("table %s exists after the failed migration; want the transaction rolled back", table)
		}
	}
}

func TestOpenPostgresErrors(t *testing.T) {
	tests := []struct {
		name, dsn, want string
	}{
		{"empty", "", "empty DSN"},
		{"malformed", "postgres://%zz", "open postgres"},
		// Port 1 on loopback refuses at once; the password must not leak.
		{"refused", "postgres://idp:hunter2-secret@127.0.0.1:1/idp?connect_timeout=2", "127.0.0.1:1/idp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := OpenPostgres(context.Background(), tc.dsn, nil)
			if err == nil {
				db.Close()
				t.Fatal("OpenPostgres succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("err = %v leaks the password", err)
			}
		})
	}
}

// TestPostgresSweepRunsOnceAtATime: while one instance holds the sweep lock,
// another instance's DeleteExpired skips instead of deleting the same rows;
// once the lock is free, it sweeps.
func TestPostgresSweepRunsOnceAtATime(t *testing.T) {
	ctx := context.Background()
	dsn := testpg.DSN(t)
	a, b := openPGAt(t, dsn), openPGAt(t, dsn)
	now := time.Now()
	if err := a.PutRecord(ctx, "login", "old", []byte("x"), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}

	conn, err := a.write.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var held bool
	if err := conn.QueryRowContext(ctx, pgTrySweep).Scan(&held); err != nil || !held {
		t.Fatalf("taking the sweep lock: %v, %v", held, err)
	}
	if n, err := b.DeleteExpired(ctx, now); err != nil || n != 0 {
		t.Fatalf("DeleteExpired while another instance sweeps = %d, %v; want 0, nil", n, err)
	}
	if _, err := conn.ExecContext(ctx, pgUnlockSweep); err != nil {
		t.Fatal(err)
	}
	if n, err := b.DeleteExpired(ctx, now); err != nil || n != 1 {
		t.Fatalf("DeleteExpired after the lock is free = %d, %v; want 1", n, err)
	}
	// The sweeper released its lock: the other instance can sweep next.
	if err := conn.QueryRowContext(ctx, pgTrySweep).Scan(&held); err != nil || !held {
		t.Fatalf("sweep lock still held after DeleteExpired returned: %v, %v", held, err)
	}
	if _, err := conn.ExecContext(ctx, pgUnlockSweep); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresConcurrentSweepsAcrossInstances: many instances sweeping at
// once never fail and together delete each expired row exactly once.
func TestPostgresConcurrentSweepsAcrossInstances(t *testing.T) {
	ctx := context.Background()
	dsn := testpg.DSN(t)
	const instances, rows = 4, 300
	dbs := make([]*DB, instances)
	for i := range dbs {
		dbs[i] = openPGAt(t, dsn)
	}
	now := time.Now()
	for i := range rows {
		if err := dbs[0].PutRecord(ctx, "code", fmt.Sprintf("c%d", i), []byte("x"), now.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var total int64
	var wg sync.WaitGroup
	for _, db := range dbs {
		for range 3 {
			wg.Go(func() {
				n, err := db.DeleteExpired(ctx, now)
				if err != nil {
					t.Errorf("DeleteExpired: %v", err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if n, err := dbs[1].DeleteExpired(ctx, now); err != nil {
		t.Fatal(err)
	} else {
		total += n
	}
	if total != rows {
		t.Fatalf("rows deleted in total = %d, want %d", total, rows)
	}
}
