package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

// TestHitCountersOneStatement: HitCounters spends several counters in one
// statement, returns them in the order asked, starts each key's own
// window, and loses no hit to parallel callers.
func TestHitCountersOneStatement(t *testing.T) {
	ctx := context.Background()
	for name, open := range map[string]func(*testing.T) *store.DB{"sqlite": openSQLite, "postgres": openPostgres} {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			if _, err := db.HitCounter(ctx, "b", now, time.Hour); err != nil {
				t.Fatal(err)
			}
			before := db.Stats()
			got, err := db.HitCounters(ctx, now, store.CounterHit{Key: "a", Window: time.Minute},
				store.CounterHit{Key: "b", Window: time.Hour}, store.CounterHit{Key: "c", Window: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if st := db.Stats().Statements - before.Statements; st != 1 {
				t.Errorf("HitCounters ran %d statements, want 1", st)
			}
			want := []store.Counter{{1, now, now.Add(time.Minute)}, {2, now, now.Add(time.Hour)}, {1, now, now.Add(time.Second)}}
			for i := range want {
				if got[i].Count != want[i].Count || !got[i].ResetAt.Equal(want[i].ResetAt) {
					t.Errorf("counter %d = %+v, want %+v", i, got[i], want[i])
				}
			}
			if _, err := db.HitCounters(ctx, now, store.CounterHit{Key: "a", Window: time.Minute}, store.CounterHit{Key: "a", Window: time.Minute}); err == nil {
				t.Error("HitCounters took a key twice")
			}

			const n = 20
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					if _, err := db.HitCounters(ctx, now, store.CounterHit{Key: "p1", Window: time.Hour}, store.CounterHit{Key: "p2", Window: time.Hour}); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			for _, k := range []string{"p1", "p2"} {
				if c, err := db.GetCounter(ctx, k, now); err != nil || c.Count != n {
					t.Errorf("%s after %d parallel hits: %+v %v", k, n, c, err)
				}
			}
		})
	}
}
