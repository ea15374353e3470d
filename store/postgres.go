package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Pool limits for PostgreSQL. Every IdP instance holds up to
// postgresMaxConns connections, so N instances need N times that below the
// server's max_connections (100 by default).
const (
	postgresMaxConns        = 20
	postgresMaxIdleConns    = 10
	postgresConnMaxLifetime = 30 * time.Minute
	postgresConnMaxIdleTime = 5 * time.Minute
	postgresConnectTimeout  = 10 * time.Second
)

// The advisory-lock keys of the PostgreSQL dialect. The second key is the
// hash of the current schema, so that databases holding several IdP schemas
// (one per test, or staging beside production) never wait on each other.
const (
	pgLockMigrate = `SELECT pg_advisory_xact_lock(hashtext('campusidp.migrate'), hashtext(current_schema()))`
	pgTrySweep    = `SELECT pg_try_advisory_lock(hashtext('campusidp.sweep'), hashtext(current_schema()))`
	pgUnlockSweep = `SELECT pg_advisory_unlock(hashtext('campusidp.sweep'), hashtext(current_schema()))`
	pgLockTx      = `SELECT pg_advisory_xact_lock(hashtext('campusidp.' || $1::text), hashtext(current_schema()))`
)

var postgresDialect = dialect{
	name:       "postgres",
	migrations: mustSub(migrationFiles, "migrations/postgres"),
	// Instances starting together queue here; the first applies the
	// migrations and the rest find them recorded in schema_migrations.
	migrationLock: pgLockMigrate,
	forUpdate:     " FOR UPDATE",
	sweepTryLock:  pgTrySweep,
	sweepUnlock:   pgUnlockSweep,
	txLock:        pgLockTx,
}

// OpenPostgres connects to the PostgreSQL database named by dsn (a URL
// postgres://user:pass@host:5432/db?sslmode=verify-full or a keyword/value
// string, as libpq accepts) and brings its schema up to date. The schema is
// the connection's current schema, so a search_path parameter in the DSN
// selects it. Several IdP processes may share one database: migrations are
// applied once, under an advisory lock.
func OpenPostgres(ctx context.Context, dsn string, logger *slog.Logger) (*DB, error) {
	if dsn == "" {
		return nil, errors.New("store: open postgres: empty DSN")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors redact any password in the DSN.
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = postgresConnectTimeout
	}
	counts := &counters{}
	pool := sql.OpenDB(countingConnector{base: stdlib.GetConnector(*cfg), c: counts})
	pool.SetMaxOpenConns(postgresMaxConns)
	pool.SetMaxIdleConns(postgresMaxIdleConns)
	pool.SetConnMaxLifetime(postgresConnMaxLifetime)
	pool.SetConnMaxIdleTime(postgresConnMaxIdleTime)
	if err := pool.PingContext(ctx); err != nil {
		_ = pool.Close()
		return nil, fmt.Errorf("store: open postgres %s:%d/%s: %w", cfg.Host, cfg.Port, cfg.Database, err)
	}
	// A server has row locks and MVCC: one pool serves readers and writers.
	db, err := open(ctx, postgresDialect, pool, pool, counts, logger)
	if err != nil {
		_ = pool.Close()
		return nil, err
	}
	return db, nil
}

// PoolStats reports the connection pool of the database (the write pool,
// which for PostgreSQL is the only one), for metrics.
func (db *DB) PoolStats() sql.DBStats { return db.write.Stats() }
