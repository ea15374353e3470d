package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

var groupNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// commitUnits commits n units at once, unit i putting record "r<i>" and
// an audit event of type types(i), and returns each commit's error.
func commitUnits(t *testing.T, db *store.DB, n int, types func(i int) string) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, u := db.BeginUnit(context.Background())
			err := errors.Join(
				db.PutRecord(ctx, "group", fmt.Sprint("r", i), []byte{byte(i)}, groupNow.Add(time.Hour)),
				db.AppendAudit(ctx, store.AuditEvent{Type: types(i), Subject: fmt.Sprint(i)}))
			if err == nil {
				err = u.Commit(context.Background())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errs
}

// TestGroupCommitOneTransactionForWaitingUnits: units that wait while the
// writer is busy are committed together, in one write transaction, and
// each request returns only once its changes are committed.
func TestGroupCommitOneTransactionForWaitingUnits(t *testing.T) {
	db := openSQLite(t)
	const n = 24
	waiting, resume := db.PauseGroupCommitForTest()
	before := db.Stats()
	done := make(chan []error)
	go func() { done <- commitUnits(t, db, n, func(int) string { return "group.ok" }) }()
	deadline := time.Now().Add(10 * time.Second)
	for waiting() < n {
		if time.Now().After(deadline) {
			resume()
			t.Fatalf("%d units waiting, want %d", waiting(), n)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("a commit returned before the writer committed it")
	default:
	}
	resume()
	for i, err := range <-done {
		if err != nil {
			t.Errorf("unit %d: %v", i, err)
		}
	}
	if tx := db.Stats().WriteTransactions - before.WriteTransactions; tx != 1 {
		t.Errorf("%d units took %d write transactions, want 1", n, tx)
	}
	for i := range n {
		if _, err := db.GetRecord(context.Background(), "group", fmt.Sprint("r", i), groupNow); err != nil {
			t.Errorf("record of unit %d: %v", i, err)
		}
	}
}

// TestGroupCommitFailingUnitAlone: a unit that fails in a group (here its
// audit row is refused by a trigger) is rolled back alone: the others of
// the same group commit, and the failing one leaves nothing behind.
func TestGroupCommitFailingUnitAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idp.db")
	db, err := store.OpenSQLite(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON audit_log WHEN NEW.event_type = 'group.refused'
BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	const n = 30
	failing := func(i int) bool { return i%3 == 1 }
	waiting, resume := db.PauseGroupCommitForTest()
	done := make(chan []error)
	go func() {
		done <- commitUnits(t, db, n, func(i int) string {
			if failing(i) {
				return "group.refused"
			}
			return "group.ok"
		})
	}()
	for waiting() < n {
		time.Sleep(time.Millisecond)
	}
	resume()
	errs := <-done
	ctx := context.Background()
	for i := range n {
		_, gerr := db.GetRecord(ctx, "group", fmt.Sprint("r", i), groupNow)
		switch {
		case failing(i) && (errs[i] == nil || !errors.Is(gerr, store.ErrNotFound)):
			t.Errorf("failing unit %d: commit %v, its record %v; want an error and no record", i, errs[i], gerr)
		case !failing(i) && (errs[i] != nil || gerr != nil):
			t.Errorf("unit %d of the same group: commit %v, record %v", i, errs[i], gerr)
		}
	}
	events, err := db.ListAudit(ctx, store.AuditFilter{Type: "group.ok"})
	if err != nil || len(events) != n-n/3 {
		t.Errorf("%d audit rows of the committed units (%v), want %d", len(events), err, n-n/3)
	}
}

// TestGroupCommitDurable: what a commit acknowledged is in the file after
// the store is closed and opened again, whatever the concurrency.
func TestGroupCommitDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idp.db")
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i, err := range commitUnits(t, db, n, func(int) string { return "group.ok" }) {
		if err != nil {
			t.Fatalf("unit %d: %v", i, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// A unit committed after Close is refused, not lost silently.
	uctx, u := db.BeginUnit(ctx)
	_ = db.PutRecord(uctx, "group", "late", []byte("x"), groupNow.Add(time.Hour))
	if err := u.Commit(ctx); err == nil {
		t.Error("a unit committed after Close succeeded")
	}
	db, err = store.OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range n {
		if _, err := db.GetRecord(ctx, "group", fmt.Sprint("r", i), groupNow); err != nil {
			t.Errorf("record of unit %d after reopening: %v", i, err)
		}
	}
}
