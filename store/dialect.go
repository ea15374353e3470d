package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
)

// migrationFiles holds one directory of numbered migrations per dialect.
//
//go:embed migrations
var migrationFiles embed.FS

// dialect is the one place where the SQL databases the store runs on differ.
// All other SQL is written once in the common subset: $n placeholders,
// INSERT … ON CONFLICT … DO UPDATE, and … RETURNING.
type dialect struct {
	name string
	// migrations holds this dialect's NNNN_name.sql files.
	migrations fs.FS
	// migrationLock, when set, runs first in the migration transaction so that
	// processes starting at the same time apply each migration once. SQLite
	// needs none: its immediate write transaction already locks the database.
	migrationLock string
	// forUpdate is appended to a SELECT whose row is updated later in the same
	// transaction, to lock the row where the database has row locks.
	forUpdate string
	// sweepTryLock, when set, is a query returning whether this process may
	// run DeleteExpired now; sweepUnlock releases it. Where several processes
	// share one server database, one sweeps at a time and the others skip
	// their turn instead of deleting the same rows concurrently.
	sweepTryLock, sweepUnlock string
	// txLock, when set, takes a named lock ($1) held until the transaction
	// ends; see DB.lockTx.
	txLock string
}

var sqliteDialect = dialect{
	name:       "sqlite",
	migrations: mustSub(migrationFiles, "migrations/sqlite"),
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// lockTx makes tx wait for, then hold until it ends, the named lock, so that
// transactions taking the same lock run one after another. Row locks cannot
// serialize a transaction that must see "no row yet" (creating the first
// signing key), hence a named lock. SQLite needs none: its write transactions
// already run one at a time.
func (db *DB) lockTx(ctx context.Context, tx *sql.Tx, name string) error {
	if db.dialect.txLock == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, db.dialect.txLock, name); err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	return nil
}
