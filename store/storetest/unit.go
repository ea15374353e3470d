package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

// UnitStore is a Store that collects a request's changes in a unit of
// work (store.DB.BeginUnit) and writes them in one transaction at Commit.
// The suite checks the unit's behaviour when the store offers it.
type UnitStore interface {
	Store
	BeginUnit(ctx context.Context) (context.Context, store.UnitOfWork)
}

func testUnit(t *testing.T, open func(t *testing.T) Store) {
	bg := context.Background()
	openUnit := func(t *testing.T) UnitStore {
		s, ok := open(t).(UnitStore)
		if !ok {
			t.Skip("the store has no unit of work")
		}
		return s
	}
	// outside reads what another request sees.
	outside := func(t *testing.T, db Store, id string) string {
		t.Helper()
		v, err := db.GetRecord(bg, "unit", id, t0)
		if errors.Is(err, store.ErrNotFound) {
			return "<none>"
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	audits := func(t *testing.T, db Store, typ string) int {
		t.Helper()
		events, err := db.ListAudit(bg, store.AuditFilter{Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		return len(events)
	}

	t.Run("ChangesAppearAtCommitAndReadYourWrites", func(t *testing.T) {
		db := openUnit(t)
		mustPut(t, db, "unit", "old", []byte("v1"), t0.Add(time.Hour))
		mustPut(t, db, "unit", "gone", []byte("x"), t0.Add(time.Hour))
		ctx, u := db.BeginUnit(bg)
		if err := db.PutRecord(ctx, "unit", "new", []byte("n"), t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := db.UpdateRecord(ctx, "unit", "old", t0, func(old []byte) ([]byte, error) { return append(old, '+'), nil }); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteRecord(ctx, "unit", "gone"); err != nil {
			t.Fatal(err)
		}
		if err := db.AppendAudit(ctx, store.AuditEvent{Type: "unit.changed", Subject: "alice"}); err != nil {
			t.Fatal(err)
		}
		if err := db.ResetCounter(ctx, "unit-counter"); err != nil {
			t.Fatal(err)
		}
		if err := db.Sessions().CommitCtx(ctx, "unit-session", []byte("s"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		// The request sees its own changes ...
		for id, want := range map[string]string{"new": "n", "old": "v1+"} {
			if v, err := db.GetRecord(ctx, "unit", id, t0); err != nil || string(v) != want {
				t.Errorf("inside the unit %s = %q, %v; want %q", id, v, err, want)
			}
		}
		if _, err := db.GetRecord(ctx, "unit", "gone", t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("inside the unit the deleted record: %v, want ErrNotFound", err)
		}
		if _, found, err := db.Sessions().FindCtx(ctx, "unit-session"); err != nil || !found {
			t.Errorf("inside the unit the committed session: found %v, %v", found, err)
		}
		// ... no one else does before the commit.
		if got := outside(t, db, "new") + outside(t, db, "old") + outside(t, db, "gone"); got != "<none>v1x" {
			t.Errorf("before the commit others see %q, want <none>v1x", got)
		}
		if n := audits(t, db, "unit.changed"); n != 0 {
			t.Errorf("audit rows before the commit: %d", n)
		}
		if _, found, _ := db.Sessions().FindCtx(bg, "unit-session"); found {
			t.Error("the session is visible before the commit")
		}
		if err := u.Commit(bg); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if got := outside(t, db, "new") + outside(t, db, "old") + outside(t, db, "gone"); got != "nv1+<none>" {
			t.Errorf("after the commit others see %q, want nv1+<none>", got)
		}
		if n := audits(t, db, "unit.changed"); n != 1 {
			t.Errorf("audit rows after the commit: %d, want 1", n)
		}
		if _, found, err := db.Sessions().FindCtx(bg, "unit-session"); err != nil || !found {
			t.Errorf("the session after the commit: found %v, %v", found, err)
		}
		// A committed unit's context writes directly again.
		mustPut(t, db, "unit", "late", []byte("l"), t0.Add(time.Hour))
		if err := db.PutRecord(ctx, "unit", "late2", []byte("l2"), t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := outside(t, db, "late2"); got != "l2" {
			t.Errorf("a write after the commit = %q, want it written at once", got)
		}
	})

	t.Run("CountersSpentAtOnce", func(t *testing.T) {
		db := openUnit(t)
		ctx, u := db.BeginUnit(bg)
		if _, err := db.HitCounter(ctx, "unit-budget", t0, time.Hour); err != nil {
			t.Fatal(err)
		}
		if c, err := db.GetCounter(bg, "unit-budget", t0); err != nil || c.Count != 1 {
			t.Errorf("a hit in a unit, seen by others before the commit: %+v %v, want 1", c, err)
		}
		// A reset is deferred, but a later hit in the same unit finds it done.
		if err := db.ResetCounter(ctx, "unit-budget"); err != nil {
			t.Fatal(err)
		}
		if c, err := db.HitCounter(ctx, "unit-budget", t0, time.Hour); err != nil || c.Count != 1 {
			t.Errorf("hit after a reset in the unit: %+v %v, want 1", c, err)
		}
		if err := u.Commit(bg); err != nil {
			t.Fatal(err)
		}
		if c, err := db.GetCounter(bg, "unit-budget", t0); err != nil || c.Count != 1 {
			t.Errorf("after the commit: %+v %v, want 1", c, err)
		}
	})

	t.Run("UpdateIsCompareAndSwapAtCommit", func(t *testing.T) {
		db := openUnit(t)
		mustPut(t, db, "unit", "code", []byte("fresh"), t0.Add(time.Hour))
		use := func(ctx context.Context) error {
			return db.UpdateRecord(ctx, "unit", "code", t0, func(old []byte) ([]byte, error) {
				if string(old) != "fresh" {
					return nil, errors.New("used")
				}
				return []byte("used"), nil
			})
		}
		ctx1, u1 := db.BeginUnit(bg)
		ctx2, u2 := db.BeginUnit(bg)
		if err := use(ctx1); err != nil {
			t.Fatal(err)
		}
		if err := use(ctx2); err != nil {
			t.Fatal(err) // both read the fresh code
		}
		if err := db.AppendAudit(ctx2, store.AuditEvent{Type: "unit.loser"}); err != nil {
			t.Fatal(err)
		}
		if err := db.PutRecord(ctx2, "unit", "loser", []byte("x"), t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := u1.Commit(bg); err != nil {
			t.Fatalf("first commit: %v", err)
		}
		if err := u2.Commit(bg); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second commit of the same code: %v, want ErrConflict", err)
		}
		if got := outside(t, db, "loser") + outside(t, db, "code"); got != "<none>used" {
			t.Errorf("after the losing commit others see %q, want <none>used", got)
		}
		if n := audits(t, db, "unit.loser"); n != 0 {
			t.Errorf("the losing unit's audit row was written")
		}
	})

	t.Run("SpendAtOnce", func(t *testing.T) {
		// An update that spends a budget (a code's tries, its single
		// use): parallel requests see it before the unit commits.
		db := openUnit(t)
		mustPut(t, db, "unit", "code", []byte("fresh"), t0.Add(time.Hour))
		use := func(ctx context.Context) error {
			return db.UpdateRecord(store.SpendAtOnce(ctx), "unit", "code", t0, func(old []byte) ([]byte, error) {
				if string(old) != "fresh" {
					return nil, errors.New("used")
				}
				return []byte("used"), nil
			})
		}
		ctx1, u1 := db.BeginUnit(bg)
		ctx2, u2 := db.BeginUnit(bg)
		if _, err := db.GetRecord(ctx1, "unit", "code", t0); err != nil {
			t.Fatal(err) // cached by the unit before the update
		}
		if err := use(ctx1); err != nil {
			t.Fatal(err)
		}
		if got := outside(t, db, "code"); got != "used" {
			t.Errorf("after the update others see %q, want used", got)
		}
		if v, err := db.GetRecord(ctx1, "unit", "code", t0); err != nil || string(v) != "used" {
			t.Errorf("the updating unit reads %q, %v; want used", v, err)
		}
		if err := use(ctx2); err == nil || err.Error() != "used" {
			t.Errorf("a second unit used the code: %v", err)
		}
		if err := errors.Join(u1.Commit(bg), u2.Commit(bg)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OneTimeCodeConsumedOnceUnderConcurrency", func(t *testing.T) {
		db := openUnit(t)
		mustPut(t, db, "unit", "otc", []byte("fresh"), t0.Add(time.Hour))
		const n = 12
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, u := db.BeginUnit(bg)
				err := db.UpdateRecord(ctx, "unit", "otc", t0, func(old []byte) ([]byte, error) {
					if string(old) != "fresh" {
						return nil, errors.New("used")
					}
					return []byte(fmt.Sprint("used by ", i)), nil
				})
				if err == nil {
					err = db.DeleteRecord(ctx, "unit", "otc")
				}
				if err == nil {
					err = db.AppendAudit(ctx, store.AuditEvent{Type: "unit.code_used"})
				}
				if err != nil {
					return
				}
				if err := u.Commit(bg); err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				} else if !errors.Is(err, store.ErrConflict) {
					t.Errorf("commit: %v", err)
				}
			}()
		}
		wg.Wait()
		if won != 1 || audits(t, db, "unit.code_used") != 1 {
			t.Errorf("%d requests consumed the code (%d audit rows), want exactly 1", won, audits(t, db, "unit.code_used"))
		}
	})

	t.Run("PartRolledBackAlone", func(t *testing.T) {
		db := openUnit(t)
		cred := store.WebAuthnCredential{ID: "unit-cred", UserID: "alice", UserHandle: []byte("h"), Name: "Key",
			Data: []byte("d"), Created: t0}
		if err := db.AddWebAuthnCredential(bg, cred); err != nil {
			t.Fatal(err)
		}
		ctx, u := db.BeginUnit(bg)
		if err := db.PutRecord(ctx, "unit", "main", []byte("m"), t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		var dropped error
		err := store.Part(ctx, func(ctx context.Context) error {
			if err := db.PutRecord(ctx, "unit", "side", []byte("s"), t0.Add(time.Hour)); err != nil {
				return err
			}
			if err := db.AppendAudit(ctx, store.AuditEvent{Type: "unit.side"}); err != nil {
				return err
			}
			return db.RenameWebAuthnCredential(ctx, "alice", "unit-cred", "Renamed")
		}, func(err error) { dropped = err })
		if err != nil {
			t.Fatal(err)
		}
		// Another request removes the key the part renames.
		if err := db.DeleteWebAuthnCredential(bg, "alice", "unit-cred"); err != nil {
			t.Fatal(err)
		}
		if err := u.Commit(bg); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if !errors.Is(dropped, store.ErrConflict) {
			t.Errorf("dropped with %v, want ErrConflict", dropped)
		}
		if got := outside(t, db, "main") + outside(t, db, "side"); got != "m<none>" {
			t.Errorf("after a dropped part others see %q, want m<none>", got)
		}
		if n := audits(t, db, "unit.side"); n != 0 {
			t.Errorf("the dropped part's audit row was written")
		}
	})
}
