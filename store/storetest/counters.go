package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

func testCounters(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	const window = 15 * time.Minute

	t.Run("FixedWindow", func(t *testing.T) {
		db := open(t)
		resetAt := t0.Add(window)
		newStart := t0.Add(window + time.Second)
		// Each step runs in order against the same key.
		steps := []struct {
			name string
			now  time.Time
			want store.Counter
		}{
			{"first hit opens a window", t0, store.Counter{Count: 1, WindowStart: t0, ResetAt: resetAt}},
			{"second hit counts", t0.Add(time.Minute), store.Counter{Count: 2, WindowStart: t0, ResetAt: resetAt}},
			{"last instant of the window", resetAt.Add(-time.Nanosecond), store.Counter{Count: 3, WindowStart: t0, ResetAt: resetAt}},
			{"window ended: new window", resetAt, store.Counter{Count: 1, WindowStart: resetAt, ResetAt: resetAt.Add(window)}},
			{"counts in the new window", newStart, store.Counter{Count: 2, WindowStart: resetAt, ResetAt: resetAt.Add(window)}},
		}
		for _, s := range steps {
			got, err := db.HitCounter(ctx, "pw:alice", s.now, window)
			if err != nil {
				t.Fatalf("%s: HitCounter: %v", s.name, err)
			}
			assertCounter(t, s.name+": HitCounter", got, s.want)
			got, err = db.GetCounter(ctx, "pw:alice", s.now)
			if err != nil {
				t.Fatalf("%s: GetCounter: %v", s.name, err)
			}
			assertCounter(t, s.name+": GetCounter", got, s.want)
		}
	})

	t.Run("GetCounter", func(t *testing.T) {
		db := open(t)
		if _, err := db.HitCounter(ctx, "k", t0, window); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			key  string
			now  time.Time
			want store.Counter
		}{
			{"live", "k", t0.Add(time.Minute), store.Counter{Count: 1, WindowStart: t0, ResetAt: t0.Add(window)}},
			{"window ended", "k", t0.Add(window), store.Counter{}},
			{"unknown key", "other", t0, store.Counter{}},
		}
		for _, tc := range tests {
			got, err := db.GetCounter(ctx, tc.key, tc.now)
			if err != nil {
				t.Fatalf("%s: GetCounter: %v", tc.name, err)
			}
			assertCounter(t, tc.name, got, tc.want)
		}
	})

	t.Run("KeysAreIndependent", func(t *testing.T) {
		db := open(t)
		for range 3 {
			if _, err := db.HitCounter(ctx, "a", t0, window); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.HitCounter(ctx, "b", t0, window)
		if err != nil || got.Count != 1 {
			t.Fatalf("HitCounter(b) = %+v, %v; want count 1", got, err)
		}
	})

	t.Run("Undo", func(t *testing.T) {
		db := open(t)
		for range 2 {
			if _, err := db.HitCounter(ctx, "k", t0, window); err != nil {
				t.Fatal(err)
			}
		}
		steps := []struct {
			name string
			now  time.Time
			want int
		}{
			{"undo one of two", t0.Add(time.Second), 1},
			{"undo the last", t0.Add(time.Second), 0},
			{"never below zero", t0.Add(time.Second), 0},
		}
		for _, s := range steps {
			if err := db.UndoCounter(ctx, "k", s.now); err != nil {
				t.Fatalf("%s: UndoCounter: %v", s.name, err)
			}
			got, err := db.GetCounter(ctx, "k", s.now)
			if err != nil || got.Count != s.want {
				t.Fatalf("%s: count = %d (%v), want %d", s.name, got.Count, err, s.want)
			}
		}
		// The window survives an undo to zero: the next hit counts in it.
		got, err := db.HitCounter(ctx, "k", t0.Add(2*time.Second), window)
		if err != nil {
			t.Fatal(err)
		}
		assertCounter(t, "hit after undo", got, store.Counter{Count: 1, WindowStart: t0, ResetAt: t0.Add(window)})
		if err := db.UndoCounter(ctx, "missing", t0); err != nil {
			t.Fatalf("UndoCounter of a missing key: %v", err)
		}
	})

	t.Run("UndoIgnoresEndedWindow", func(t *testing.T) {
		db := open(t)
		for range 2 {
			if _, err := db.HitCounter(ctx, "k", t0, window); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.UndoCounter(ctx, "k", t0.Add(window)); err != nil {
			t.Fatal(err)
		}
		// Observed through an earlier clock, the old window must be untouched.
		got, err := db.GetCounter(ctx, "k", t0)
		if err != nil || got.Count != 2 {
			t.Fatalf("count = %d (%v), want 2: undo must not reach into an ended window", got.Count, err)
		}
	})

	t.Run("Reset", func(t *testing.T) {
		db := open(t)
		for _, key := range []string{"k", "other"} {
			if _, err := db.HitCounter(ctx, key, t0, window); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.ResetCounter(ctx, "k"); err != nil {
			t.Fatalf("ResetCounter: %v", err)
		}
		if got, err := db.GetCounter(ctx, "k", t0); err != nil || got != (store.Counter{}) {
			t.Fatalf("GetCounter after reset = %+v, %v; want zero", got, err)
		}
		if got, err := db.GetCounter(ctx, "other", t0); err != nil || got.Count != 1 {
			t.Fatalf("ResetCounter touched another key: %+v, %v", got, err)
		}
		if got, err := db.HitCounter(ctx, "k", t0.Add(time.Second), window); err != nil || got.Count != 1 || !got.WindowStart.Equal(t0.Add(time.Second)) {
			t.Fatalf("HitCounter after reset = %+v, %v; want a fresh window", got, err)
		}
		if err := db.ResetCounter(ctx, "missing"); err != nil {
			t.Fatalf("ResetCounter of a missing key: %v", err)
		}
	})

	t.Run("ResetWithPrefix", func(t *testing.T) {
		db := open(t)
		keys := []string{"pw:c:a_b|ip:1", "pw:c:a_b|dev:x", "pw:c:aXb|ip:1", "pw:c:a_b", "pw:c:a%|ip:1", "pw:id:a_b"}
		for _, key := range keys {
			if _, err := db.HitCounter(ctx, key, t0, window); err != nil {
				t.Fatal(err)
			}
		}
		n, err := db.ResetCountersWithPrefix(ctx, "pw:c:a_b|")
		if err != nil || n != 2 {
			t.Fatalf("ResetCountersWithPrefix = %d, %v; want 2", n, err)
		}
		for i, key := range keys {
			got, err := db.GetCounter(ctx, key, t0)
			if want := map[bool]int{true: 0, false: 1}[i < 2]; err != nil || got.Count != want {
				t.Errorf("%s: count %d (%v), want %d: \"_\" and \"%%\" must not act as wildcards", key, got.Count, err, want)
			}
		}
	})

	t.Run("InvalidHit", func(t *testing.T) {
		db := open(t)
		tests := []struct {
			name   string
			key    string
			window time.Duration
		}{
			{"empty key", "", window},
			{"zero window", "k", 0},
			{"negative window", "k", -time.Second},
		}
		for _, tc := range tests {
			if _, err := db.HitCounter(ctx, tc.key, t0, tc.window); err == nil {
				t.Errorf("%s: HitCounter succeeded, want an error", tc.name)
			}
		}
	})

	t.Run("ConcurrentHitsAllCount", func(t *testing.T) {
		db := open(t)
		const hitters = 50
		counts := make([]int, hitters)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range hitters {
			wg.Go(func() {
				<-start
				c, err := db.HitCounter(ctx, "hot", t0, window)
				if err != nil {
					t.Errorf("HitCounter: %v", err)
					return
				}
				counts[i] = c.Count
			})
		}
		close(start)
		wg.Wait()
		// Every hit saw a distinct count: no two updates overlapped.
		seen := make(map[int]bool, hitters)
		for _, n := range counts {
			if n < 1 || n > hitters || seen[n] {
				t.Fatalf("HitCounter results %v are not a permutation of 1..%d", counts, hitters)
			}
			seen[n] = true
		}
		got, err := db.GetCounter(ctx, "hot", t0)
		if err != nil || got.Count != hitters {
			t.Fatalf("final count = %d (%v), want %d", got.Count, err, hitters)
		}
	})
}

func assertCounter(t *testing.T, what string, got, want store.Counter) {
	t.Helper()
	if got.Count != want.Count || !got.WindowStart.Equal(want.WindowStart) || !got.ResetAt.Equal(want.ResetAt) {
		t.Fatalf("%s = %+v, want %+v", what, got, want)
	}
}
