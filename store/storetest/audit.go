package storetest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

func testAudit(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("AppendAndListRoundTrip", func(t *testing.T) {
		db := open(t)
		in := store.AuditEvent{
			Time: t0, Type: "login.success", Actor: "alice", Subject: "alice",
			ClientIP: "192.0.2.7", UserAgent: "Mozilla/5.0", RequestID: "req-1",
			Detail: map[string]string{"client": "moodle", "amr": "pwd otp", "note": "日本語"},
		}
		if err := db.AppendAudit(ctx, in); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		if err := db.AppendAudit(ctx, store.AuditEvent{Type: "no.detail"}); err != nil {
			t.Fatalf("AppendAudit without time or detail: %v", err)
		}
		got, err := db.ListAudit(ctx, store.AuditFilter{})
		if err != nil || len(got) != 2 {
			t.Fatalf("ListAudit = %d events, %v; want 2", len(got), err)
		}
		newest, first := got[0], got[1]
		if first.ID <= 0 || newest.ID <= first.ID {
			t.Fatalf("IDs %d, %d: want positive and increasing", first.ID, newest.ID)
		}
		if !first.Time.Equal(in.Time) || first.Type != in.Type || first.Actor != in.Actor || first.Subject != in.Subject ||
			first.ClientIP != in.ClientIP || first.UserAgent != in.UserAgent || first.RequestID != in.RequestID ||
			!maps.Equal(first.Detail, in.Detail) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", first, in)
		}
		if newest.Type != "no.detail" || len(newest.Detail) != 0 {
			t.Fatalf("second event = %+v", newest)
		}
		if time.Since(newest.Time) > time.Minute || time.Since(newest.Time) < 0 {
			t.Fatalf("zero Time was stored as %v, want the current time", newest.Time)
		}
	})

	t.Run("AppendRequiresType", func(t *testing.T) {
		db := open(t)
		if err := db.AppendAudit(ctx, store.AuditEvent{Actor: "alice"}); err == nil {
			t.Fatal("AppendAudit without Type succeeded, want an error")
		}
	})

	t.Run("Filters", func(t *testing.T) {
		db := open(t)
		// Appended in order; event i happens at t0 + i minutes.
		events := []struct{ typ, actor, subject string }{
			{"login.success", "alice", "alice"},   // 0
			{"login.failure", "", "bob"},          // 1
			{"mfa.reset", "staff1", "alice"},      // 2
			{"login.success", "bob", "bob"},       // 3
			{"mfa.reset", "staff1", "bob"},        // 4
			{"login.failure", "", "alice"},        // 5
			{"settings.email", "alice", "alice"},  // 6
			{"login.success", "staff1", "staff1"}, // 7
		}
		for i, e := range events {
			if err := db.AppendAudit(ctx, store.AuditEvent{
				Time: t0.Add(time.Duration(i) * time.Minute), Type: e.typ, Actor: e.actor, Subject: e.subject,
				RequestID: fmt.Sprint(i),
			}); err != nil {
				t.Fatal(err)
			}
		}
		all, err := db.ListAudit(ctx, store.AuditFilter{})
		if err != nil || len(all) != len(events) {
			t.Fatalf("ListAudit = %d, %v", len(all), err)
		}
		idOf := func(i int) int64 { return all[len(all)-1-i].ID } // all is newest first

		tests := []struct {
			name string
			f    store.AuditFilter
			want []int // event indexes, newest first
		}{
			{"no filter", store.AuditFilter{}, []int{7, 6, 5, 4, 3, 2, 1, 0}},
			{"subject", store.AuditFilter{Subject: "alice"}, []int{6, 5, 2, 0}},
			{"actor", store.AuditFilter{Actor: "staff1"}, []int{7, 4, 2}},
			{"type", store.AuditFilter{Type: "login.failure"}, []int{5, 1}},
			{"since is inclusive", store.AuditFilter{Since: t0.Add(5 * time.Minute)}, []int{7, 6, 5}},
			{"until is exclusive", store.AuditFilter{Until: t0.Add(2 * time.Minute)}, []int{1, 0}},
			{"since and until", store.AuditFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute)}, []int{3, 2}},
			{"subject and type", store.AuditFilter{Subject: "bob", Type: "mfa.reset"}, []int{4}},
			{"actor and subject", store.AuditFilter{Actor: "staff1", Subject: "alice"}, []int{2}},
			{"limit", store.AuditFilter{Limit: 3}, []int{7, 6, 5}},
			{"before id", store.AuditFilter{BeforeID: idOf(3)}, []int{2, 1, 0}},
			{"before id with filter and limit", store.AuditFilter{Subject: "alice", BeforeID: idOf(6), Limit: 2}, []int{5, 2}},
			{"no match", store.AuditFilter{Subject: "carol"}, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := db.ListAudit(ctx, tc.f)
				if err != nil {
					t.Fatalf("ListAudit: %v", err)
				}
				var gotIdx []int
				for _, e := range got {
					i, err := strconv.Atoi(e.RequestID)
					if err != nil {
						t.Fatalf("event %d has RequestID %q", e.ID, e.RequestID)
					}
					gotIdx = append(gotIdx, i)
				}
				if !slices.Equal(gotIdx, tc.want) {
					t.Fatalf("ListAudit(%+v) = events %v, want %v", tc.f, gotIdx, tc.want)
				}
			})
		}
	})

	t.Run("PagingAndLimits", func(t *testing.T) {
		db := open(t)
		const total = store.MaxAuditLimit + 5
		for i := range total {
			if err := db.AppendAudit(ctx, store.AuditEvent{Time: t0, Type: "login.success", RequestID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name  string
			limit int
			want  int
		}{
			{"default", 0, store.DefaultAuditLimit},
			{"negative means default", -1, store.DefaultAuditLimit},
			{"explicit", 7, 7},
			{"capped", store.MaxAuditLimit + 1, store.MaxAuditLimit},
		}
		for _, tc := range tests {
			got, err := db.ListAudit(ctx, store.AuditFilter{Limit: tc.limit})
			if err != nil || len(got) != tc.want {
				t.Fatalf("%s: ListAudit(Limit %d) = %d events, %v; want %d", tc.name, tc.limit, len(got), err, tc.want)
			}
		}

		// Walking all pages visits every event once, newest first.
		var seen []int64
		var before int64
		for pages := 0; ; pages++ {
			if pages > total {
				t.Fatal("paging does not terminate")
			}
			page, err := db.ListAudit(ctx, store.AuditFilter{Limit: 300, BeforeID: before})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				seen = append(seen, e.ID)
			}
			before = page[len(page)-1].ID
		}
		if len(seen) != total {
			t.Fatalf("paging saw %d events, want %d", len(seen), total)
		}
		if !slices.IsSortedFunc(seen, func(a, b int64) int { return cmp.Compare(b, a) }) || len(slices.Compact(slices.Clone(seen))) != total {
			t.Fatalf("paging returned IDs out of order or twice")
		}
	})
}
