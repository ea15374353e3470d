package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
