package store

import (
	"embed"
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
