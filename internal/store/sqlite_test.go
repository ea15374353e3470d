package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

func openTestDB(t *testing.T, path string) *DB {
	t.Helper()
	db, err := OpenSQLite(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func appliedVersions(t *testing.T, db *DB) []int64 {
	t.Helper()
	rows, err := db.read.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

func TestMigrationsAreIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idp.db")
	want, err := loadMigrations(sqliteDialect.migrations)
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(time.Hour)

	db, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutRecord(ctx, "k", "id", []byte("kept"), expires); err != nil {
		t.Fatal(err)
	}
	if got := appliedVersions(t, db); len(got) != len(want) {
		t.Fatalf("applied versions %v, want %d migrations", got, len(want))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		db := openTestDB(t, path)
		if got := appliedVersions(t, db); len(got) != len(want) {
			t.Fatalf("reopen %d: applied versions %v, want each of %d migrations once", i, got, len(want))
		}
		if v, err := db.GetRecord(ctx, "k", "id", time.Now()); err != nil || string(v) != "kept" {
			t.Fatalf("reopen %d: GetRecord = %q, %v; want the data kept", i, v, err)
		}
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idp.db")
	const openers = 4
	dbs := make([]*DB, openers)
	var wg sync.WaitGroup
	for i := range openers {
		wg.Go(func() {
			db, err := OpenSQLite(context.Background(), path, nil)
			if err != nil {
				t.Errorf("OpenSQLite: %v", err)
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
	want, _ := loadMigrations(sqliteDialect.migrations)
	if got := appliedVersions(t, dbs[0]); len(got) != len(want) {
		t.Fatalf("applied versions %v, want %d", got, len(want))
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idp.db")
	db := openTestDB(t, path)
	if _, err := db.write.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := OpenSQLite(context.Background(), path, nil); !errors.Is(err, ErrSchemaTooNew) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("OpenSQLite on a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

func TestFailedMigrationChangesNothing(t *testing.T) {
	ctx := context.Background()
	broken := dialect{
		name:          "sqlite-test",
		migrationLock: "SELECT 1", // exercises the lock hook
		migrations: fstest.MapFS{
			"0001_init.sql":   {Data: []byte("CREATE TABLE first (x INTEGER)")},
			"0002_broken.sql": {Data: []byte("CREATE TABLE second (x INTEGER); THIS IS NOT SQL")},
		},
	}
	// Start from an empty schema_migrations so both migrations are pending.
	fresh := openTestDB(t, filepath.Join(t.TempDir(), "fresh.db"))
	if _, err := fresh.write.Exec(`DROP TABLE schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, fresh.write, broken, fresh.logger); err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Fatalf("migrate with a broken migration: err = %v, want it to name migration 2", err)
	}
	for _, table := range []string{"first", "second", "schema_migrations"} {
		var n int
		if err := fresh.read.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = $1`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("table %s exists after the failed migration; want the transaction rolled back", table)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1")}
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		want    []int64
		wantErr string
	}{
		{"sorted by number not name", fstest.MapFS{"10_b.sql": sql, "2_a.sql": sql, "README.md": sql}, []int64{2, 10}, ""},
		{"no number", fstest.MapFS{"init.sql": sql}, nil, "NNNN_description"},
		{"no description", fstest.MapFS{"0001_.sql": sql}, nil, "NNNN_description"},
		{"version zero", fstest.MapFS{"0000_init.sql": sql}, nil, "NNNN_description"},
		{"duplicate version", fstest.MapFS{"0001_a.sql": sql, "1_b.sql": sql}, nil, "share version 1"},
		{"empty", fstest.MapFS{}, nil, "no migrations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadMigrations(tc.fsys)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var versions []int64
			for _, m := range got {
				versions = append(versions, m.version)
			}
			if !slices.Equal(versions, tc.want) {
				t.Fatalf("versions = %v, want %v", versions, tc.want)
			}
		})
	}
}

func TestOpenSQLitePaths(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{"odd characters", filepath.Join(dir, "a dir?#%", "idp 1.db"), false},
		{"missing directory", filepath.Join(dir, "missing", "idp.db"), true},
		{"not a database", notDB, true},
		{"empty path", "", true},
	}
	if err := os.Mkdir(filepath.Join(dir, "a dir?#%"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := OpenSQLite(context.Background(), tc.path, nil)
			if tc.wantErr {
				if err == nil {
					db.Close()
					t.Fatal("OpenSQLite succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenSQLite: %v", err)
			}
			defer db.Close()
			if _, err := os.Stat(tc.path); err != nil {
				t.Fatalf("database not created at the given path: %v", err)
			}
			var mode string
			if err := db.read.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
				t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
			}
			var fk int
			if err := db.read.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
				t.Fatalf("foreign_keys = %d, %v; want 1", fk, err)
			}
			if _, err := db.read.Exec(`DELETE FROM records`); err == nil {
				t.Fatal("the read pool accepted a write; want query_only connections")
			}
		})
	}
}

func TestDeleteExpiredDropsOrphanBindings(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, filepath.Join(t.TempDir(), "idp.db"))
	s := db.SessionStore()
	now := time.Now()
	for _, b := range []struct{ token, user string }{{"live", "u"}, {"expired", "u"}, {"never-committed", "u"}, {"just-bound", "u"}} {
		if err := db.BindSessionUser(ctx, b.token, b.user); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CommitCtx(ctx, "live", []byte("x"), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitCtx(ctx, "expired", []byte("x"), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Age every binding but one past the grace period.
	if _, err := db.write.Exec(`UPDATE session_users SET bound_at = $1 WHERE token <> 'just-bound'`,
		now.Add(-2*bindingGrace).UnixNano()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteExpired(ctx, now); err != nil {
		t.Fatal(err)
	}
	rows, err := db.read.Query(`SELECT token FROM session_users ORDER BY token`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var tok string
		if err := rows.Scan(&tok); err != nil {
			t.Fatal(err)
		}
		got = append(got, tok)
	}
	if strings.Join(got, ",") != "just-bound,live" {
		t.Fatalf("bindings left = %v, want [just-bound live]", got)
	}
}
