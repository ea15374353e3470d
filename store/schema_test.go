package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/campusidp/campusidp/internal/testpg"
)

// sqlBackend is one SQL engine the schema tests run on.
type sqlBackend struct {
	name    string
	dialect dialect
	// fresh returns where a new, empty store lives (a file, a schema).
	fresh func(t *testing.T) string
	open  func(ctx context.Context, where string) (*DB, error)
	// openers is how many instances open an empty store at once.
	openers int
	// broken is a dialect whose second migration fails half-way.
	broken dialect
	// tableCount counts the tables called $1 in the store's schema.
	tableCount string
}

var sqlBackends = []sqlBackend{
	{
		name:    "sqlite",
		dialect: sqliteDialect,
		fresh:   func(t *testing.T) string { return filepath.Join(t.TempDir(), "idp.db") },
		open:    func(ctx context.Context, path string) (*DB, error) { return OpenSQLite(ctx, path, nil) },
		openers: 4,
		broken: dialect{
			name:          "sqlite-test",
			migrationLock: "SELECT 1", // exercises the lock hook
			migrations: fstest.MapFS{
				"0001_init.sql":   {Data: []byte("CREATE TABLE first (x INTEGER)")},
				"0002_broken.sql": {Data: []byte("CREATE TABLE second (x INTEGER); THIS IS NOT SQL")},
			},
		},
		tableCount: `SELECT count(*) FROM sqlite_master WHERE name = $1`,
	},
	{
		name:    "postgres",
		dialect: postgresDialect,
		fresh:   func(t *testing.T) string { return testpg.DSN(t) },
		open:    func(ctx context.Context, dsn string) (*DB, error) { return OpenPostgres(ctx, dsn, nil) },
		openers: 6,
		// PostgreSQL DDL is transactional, so a broken migration leaves no
		// table behind; the real dialect (and its advisory lock) runs it.
		broken: func() dialect {
			d := postgresDialect
			d.migrations = fstest.MapFS{
				"0001_init.sql":   {Data: []byte("CREATE TABLE first (x BIGINT)")},
				"0002_broken.sql": {Data: []byte("CREATE TABLE second (x BIGINT); THIS IS NOT SQL")},
			}
			return d
		}(),
		tableCount: `SELECT count(*) FROM information_schema.tables
WHERE table_schema = current_schema() AND table_name = $1`,
	},
}

// openAt opens the store at where and closes it when t ends.
func (b sqlBackend) openAt(t *testing.T, where string) *DB {
	t.Helper()
	db, err := b.open(context.Background(), where)
	if err != nil {
		t.Fatalf("open %s: %v", b.name, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrationsAreIdempotent(t *testing.T) {
	for _, b := range sqlBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			where := b.fresh(t)
			want, err := loadMigrations(b.dialect.migrations)
			if err != nil {
				t.Fatal(err)
			}
			db, err := b.open(ctx, where)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.PutRecord(ctx, "k", "id", []byte("kept"), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if got := appliedVersions(t, db); len(got) != len(want) {
				t.Fatalf("applied versions %v, want %d migrations", got, len(want))
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				db := b.openAt(t, where)
				if got := appliedVersions(t, db); len(got) != len(want) {
					t.Fatalf("reopen %d: applied versions %v, want each of %d migrations once", i, got, len(want))
				}
				if v, err := db.GetRecord(ctx, "k", "id", time.Now()); err != nil || string(v) != "kept" {
					t.Fatalf("reopen %d: GetRecord = %q, %v; want the data kept", i, v, err)
				}
			}
		})
	}
}

// TestConcurrentOpenMigratesOnce: instances starting together on an empty
// store wait on the migration lock; exactly one applies the schema.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	for _, b := range sqlBackends {
		t.Run(b.name, func(t *testing.T) {
			where := b.fresh(t)
			dbs := make([]*DB, b.openers)
			var wg sync.WaitGroup
			for i := range b.openers {
				wg.Go(func() {
					db, err := b.open(context.Background(), where)
					if err != nil {
						t.Errorf("open %s: %v", b.name, err)
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
			want, _ := loadMigrations(b.dialect.migrations)
			if got := appliedVersions(t, dbs[0]); len(got) != len(want) {
				t.Fatalf("applied versions %v, want %d", got, len(want))
			}
		})
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	for _, b := range sqlBackends {
		t.Run(b.name, func(t *testing.T) {
			where := b.fresh(t)
			db := b.openAt(t, where)
			if _, err := db.write.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`); err != nil {
				t.Fatal(err)
			}
			db.Close()
			if db, err := b.open(context.Background(), where); !errors.Is(err, ErrSchemaTooNew) {
				if err == nil {
					db.Close()
				}
				t.Fatalf("open %s on a newer schema: err = %v, want ErrSchemaTooNew", b.name, err)
			}
		})
	}
}

// TestFailedMigrationChangesNothing: a migration that fails half-way is
// rolled back with the ones before it in the same run.
func TestFailedMigrationChangesNothing(t *testing.T) {
	for _, b := range sqlBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db := b.openAt(t, b.fresh(t))
			// Start from an empty schema_migrations so both migrations are pending.
			if _, err := db.write.Exec(`DROP TABLE schema_migrations`); err != nil {
				t.Fatal(err)
			}
			if err := migrate(ctx, db.write, b.broken, db.logger); err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
				t.Fatalf("migrate with a broken migration: err = %v, want it to name migration 2", err)
			}
			for _, table := range []string{"first", "second", "schema_migrations"} {
				var n int
				if err := db.read.QueryRow(b.tableCount, table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("table %s exists after the failed migration; want the transaction rolled back", table)
				}
			}
		})
	}
}
