package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
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
