package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

func testDeleteExpired(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	db := open(t)
	// Sessions are judged by the wall clock, so the whole test is too.
	now := time.Now()
	past := now.Add(-time.Hour)

	records := []struct {
		id       string
		expires  time.Time
		wantKept bool
	}{
		{"long-gone", now.Add(-time.Minute), false},
		{"expires-now", now, false},
		{"live", now.Add(time.Hour), true},
	}
	for _, r := range records {
		mustPut(t, db, "login", r.id, []byte(r.id), r.expires)
	}
	counters := []struct {
		key      string
		start    time.Time
		wantKept bool
	}{
		{"ended", now.Add(-time.Hour), false}, // window [now-1h, now)
		{"running", now.Add(-time.Minute), true},
	}
	for _, c := range counters {
		if _, err := db.HitCounter(ctx, c.key, c.start, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	s := db.Sessions()
	if err := s.CommitCtx(ctx, "old-session", []byte("x"), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitCtx(ctx, "live-session", []byte("y"), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The audit log is never swept.
	if err := db.AppendAudit(ctx, store.AuditEvent{Time: past.Add(-24 * time.Hour), Type: "old.event"}); err != nil {
		t.Fatal(err)
	}

	n, err := db.DeleteExpired(ctx, now)
	if err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	if n != 4 { // two records, one counter, one session
		t.Fatalf("DeleteExpired = %d, want 4", n)
	}
	if n, err := db.DeleteExpired(ctx, now); err != nil || n != 0 {
		t.Fatalf("second DeleteExpired = %d, %v; want 0", n, err)
	}

	// Reading with an earlier clock shows whether a row still exists.
	for _, r := range records {
		_, err := db.GetRecord(ctx, "login", r.id, past)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetRecord(%s): %v", r.id, err)
		}
		if kept := err == nil; kept != r.wantKept {
			t.Errorf("record %s kept = %v, want %v", r.id, kept, r.wantKept)
		}
	}
	for _, c := range counters {
		got, err := db.GetCounter(ctx, c.key, c.start)
		if err != nil {
			t.Fatal(err)
		}
		if kept := got.Count == 1; kept != c.wantKept {
			t.Errorf("counter %s kept = %v, want %v", c.key, kept, c.wantKept)
		}
	}
	assertLiveTokens(t, s, "live-session")
	if events, err := db.ListAudit(ctx, store.AuditFilter{}); err != nil || len(events) != 1 {
		t.Fatalf("audit log after DeleteExpired = %d events, %v; want 1", len(events), err)
	}
}
