package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

func TestClassifyStatements(t *testing.T) {
	for q, want := range map[string]stmtKind{
		qPutRecord:                  kindWrite,
		qGetRecord:                  kindRead,
		qTakeRecord:                 kindWrite,
		qCASRecord:                  kindWrite,
		qLockRecord + " FOR UPDATE": kindRead,
		"  \n-- a comment\n/* another */ insert into x values (1)": kindWrite,
		"CREATE TABLE IF NOT EXISTS t (x INTEGER)":                 kindWrite,
		"PRAGMA page_count": kindRead,
		pgLockTx:            kindRead,
		"WITH old AS (SELECT 1) DELETE FROM records WHERE kind = 'x'": kindWrite,
		"with t as (select updated_at from x) select * from t":        kindRead,
		"BEGIN IMMEDIATE":          kindControl,
		"commit":                   kindControl,
		"SAVEPOINT s1":             kindControl,
		"RELEASE SAVEPOINT s1":     kindControl,
		"ROLLBACK TO SAVEPOINT s1": kindControl,
		"":                         kindRead,
		"SELECT 1":                 kindRead,
	} {
		if got := classify(q); got != want {
			t.Errorf("classify(%q) = %d, want %d", q, got, want)
		}
	}
}

// TestStatsCountStatementsAndWriteTransactions checks the counts exactly on
// each backend: the statements the store's methods run, transactions that
// write, roll back or only read, prepared statements used inside a
// transaction, and failed writes.
func TestStatsCountStatementsAndWriteTransactions(t *testing.T) {
	for _, b := range sqlBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db := b.openAt(t, b.fresh(t))
			now := time.Now()
			later := now.Add(time.Hour)

			if s := db.Stats(); s.WriteTransactions < 1 || s.Statements < s.WriteStatements || s.WriteStatements < 1 {
				t.Errorf("after Open (migrations): %+v, want at least one write transaction", s)
			}

			step := func(name string, want Stats, fn func() error) {
				t.Helper()
				before := db.Stats()
				if err := fn(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				after := db.Stats()
				got := Stats{
					WriteTransactions: after.WriteTransactions - before.WriteTransactions,
					Statements:        after.Statements - before.Statements,
					WriteStatements:   after.WriteStatements - before.WriteStatements,
				}
				if got != want {
					t.Errorf("%s: counted %+v, want %+v", name, got, want)
				}
			}

			step("PutRecord", Stats{1, 1, 1}, func() error {
				return db.PutRecord(ctx, "k", "a", []byte("v"), later)
			})
			step("GetRecord", Stats{0, 1, 0}, func() error {
				_, err := db.GetRecord(ctx, "k", "a", now)
				return err
			})
			step("GetRecord (missing)", Stats{0, 1, 0}, func() error {
				if _, err := db.GetRecord(ctx, "k", "missing", now); !errors.Is(err, ErrNotFound) {
					return err
				}
				return nil
			})
			step("UpdateRecord", Stats{1, 2, 1}, func() error {
				return db.UpdateRecord(ctx, "k", "a", now, func(old []byte) ([]byte, error) { return append(old, 'w'), nil })
			})
			step("UpdateRecord refused by fn", Stats{0, 1, 0}, func() error {
				errNo := errors.New("no")
				if err := db.UpdateRecord(ctx, "k", "a", now, func([]byte) ([]byte, error) { return nil, errNo }); !errors.Is(err, errNo) {
					return err
				}
				return nil
			})
			step("TakeRecord (DELETE ... RETURNING)", Stats{1, 1, 1}, func() error {
				_, err := db.TakeRecord(ctx, "k", "a", now)
				return err
			})
			step("DeleteRecord", Stats{1, 1, 1}, func() error { return db.DeleteRecord(ctx, "k", "a") })

			step("ad-hoc statement, not prepared", Stats{1, 1, 1}, func() error {
				_, err := db.write.ExecContext(ctx, `DELETE FROM records WHERE kind = $1`, "none")
				return err
			})
			step("transaction of two writes and a read", Stats{1, 3, 2}, func() error {
				return db.inTx(ctx, func(tx *sql.Tx) error {
					put := tx.StmtContext(ctx, db.q.putRecord) // prepared on the pool, run in the transaction
					if _, err := put.ExecContext(ctx, "k", "b", []byte("1"), nanos(later)); err != nil {
						return err
					}
					if _, err := put.ExecContext(ctx, "k", "c", []byte("2"), nanos(later)); err != nil {
						return err
					}
					var n int
					return tx.QueryRowContext(ctx, `SELECT count(*) FROM records WHERE kind = $1`, "k").Scan(&n)
				})
			})
			step("read-only transaction", Stats{0, 2, 0}, func() error {
				return db.inTx(ctx, func(tx *sql.Tx) error {
					var n int
					if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n); err != nil {
						return err
					}
					return tx.QueryRowContext(ctx, `SELECT 1`).Scan(&n)
				})
			})
			step("rolled-back write", Stats{0, 1, 1}, func() error {
				errRollback := errors.New("roll back")
				err := db.inTx(ctx, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, `DELETE FROM records WHERE kind = $1`, "k"); err != nil {
						return err
					}
					return errRollback
				})
				if !errors.Is(err, errRollback) {
					return err
				}
				return nil
			})
			step("failed autocommit write", Stats{0, 1, 1}, func() error {
				if _, err := db.write.ExecContext(ctx, `INSERT INTO no_such_table (x) VALUES (1)`); err == nil {
					return errors.New("insert into a missing table succeeded")
				}
				return nil
			})
			step("Ping (SELECT 1 on each pool)", Stats{0, 2, 0}, func() error {
				return db.Ping(ctx) // one SELECT 1 per pool
			})
		})
	}
}
