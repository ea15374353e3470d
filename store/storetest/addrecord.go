package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

func testAddRecord(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("OnlyWhenAbsentOrExpired", func(t *testing.T) {
		db := open(t)
		expires := t0.Add(time.Hour)
		steps := []struct {
			name    string
			value   string
			now     time.Time
			wantErr error
			want    string // the value readable afterwards at now
		}{
			{"absent: added", "first", t0, nil, "first"},
			{"live: refused", "second", t0.Add(time.Minute), store.ErrExists, "first"},
			{"one ns before expiry: refused", "third", expires.Add(-time.Nanosecond), store.ErrExists, "first"},
			{"expired: replaced", "fourth", expires, nil, "fourth"},
		}
		for _, st := range steps {
			err := db.AddRecord(ctx, "key", "k1", []byte(st.value), st.now.Add(time.Hour), st.now)
			if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
				t.Fatalf("%s: AddRecord err = %v, want %v", st.name, err, st.wantErr)
			}
			got, err := db.GetRecord(ctx, "key", "k1", st.now)
			if err != nil || string(got) != st.want {
				t.Fatalf("%s: GetRecord = %q, %v; want %q", st.name, got, err, st.want)
			}
		}
		// Another kind or ID is another record.
		if err := db.AddRecord(ctx, "other", "k1", []byte("x"), expires, t0); err != nil {
			t.Fatalf("AddRecord of another kind: %v", err)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		db := open(t)
		for _, tc := range []struct{ kind, id string }{{"", "id"}, {"kind", ""}} {
			if err := db.AddRecord(ctx, tc.kind, tc.id, nil, t0.Add(time.Minute), t0); err == nil {
				t.Errorf("AddRecord(%q, %q) succeeded, want an error", tc.kind, tc.id)
			}
		}
		if err := db.AddRecord(ctx, "kind", "id", nil, time.Time{}, t0); err == nil {
			t.Error("AddRecord with a zero expiry succeeded")
		}
	})

	t.Run("ConcurrentAddsHaveOneWinner", func(t *testing.T) {
		db := open(t)
		const adders = 20
		var wins, losses atomic.Int32
		winner := make(chan string, adders)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range adders {
			wg.Go(func() {
				<-start
				v := fmt.Sprintf("key-%d", i)
				switch err := db.AddRecord(ctx, "signing_key", "generated", []byte(v), t0.Add(time.Hour), t0); {
				case err == nil:
					wins.Add(1)
					winner <- v
				case errors.Is(err, store.ErrExists):
					losses.Add(1)
				default:
					t.Errorf("AddRecord: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || losses.Load() != adders-1 {
			t.Fatalf("wins %d, losses %d; want 1 and %d", wins.Load(), losses.Load(), adders-1)
		}
		got, err := db.GetRecord(ctx, "signing_key", "generated", t0)
		if want := <-winner; err != nil || string(got) != want {
			t.Fatalf("stored %q, %v; want the winner's %q", got, err, want)
		}
	})
}
