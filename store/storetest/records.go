package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

// t0 is the suite's fixed "now"; records and counters take time as an
// argument so expiry is tested without sleeping.
var t0 = time.Date(2030, 4, 1, 9, 0, 0, 123456789, time.UTC)

func testRecords(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("GetAtAndAfterExpiry", func(t *testing.T) {
		db := open(t)
		expires := t0.Add(time.Minute)
		mustPut(t, db, "login", "tx1", []byte("state"), expires)
		tests := []struct {
			name    string
			kind    string
			id      string
			now     time.Time
			want    []byte
			wantErr error
		}{
			{"before expiry", "login", "tx1", t0, []byte("state"), nil},
			{"one ns before expiry", "login", "tx1", expires.Add(-time.Nanosecond), []byte("state"), nil},
			{"at expiry", "login", "tx1", expires, nil, store.ErrNotFound},
			{"after expiry", "login", "tx1", expires.Add(time.Hour), nil, store.ErrNotFound},
			{"unknown id", "login", "tx2", t0, nil, store.ErrNotFound},
			{"same id other kind", "code", "tx1", t0, nil, store.ErrNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := db.GetRecord(ctx, tc.kind, tc.id, tc.now)
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("GetRecord err = %v, want %v", err, tc.wantErr)
				}
				if !bytes.Equal(got, tc.want) {
					t.Fatalf("GetRecord = %q, want %q", got, tc.want)
				}
			})
		}
	})

	t.Run("PutReplacesValueAndExpiry", func(t *testing.T) {
		db := open(t)
		mustPut(t, db, "login", "tx", []byte("old"), t0.Add(time.Minute))
		mustPut(t, db, "login", "tx", []byte("new"), t0.Add(time.Hour))
		got, err := db.GetRecord(ctx, "login", "tx", t0.Add(30*time.Minute))
		if err != nil || string(got) != "new" {
			t.Fatalf("GetRecord after replace = %q, %v; want new value with the new expiry", got, err)
		}
		// Putting again also revives a record that had expired.
		mustPut(t, db, "login", "tx", []byte("again"), t0.Add(3*time.Hour))
		if got, err := db.GetRecord(ctx, "login", "tx", t0.Add(2*time.Hour)); err != nil || string(got) != "again" {
			t.Fatalf("GetRecord after re-put = %q, %v", got, err)
		}
	})

	t.Run("BinaryAndEmptyValues", func(t *testing.T) {
		db := open(t)
		for _, v := range [][]byte{{0, 1, 2, 0xff, 0}, {}, nil} {
			mustPut(t, db, "bin", "x", v, t0.Add(time.Minute))
			got, err := db.GetRecord(ctx, "bin", "x", t0)
			if err != nil || !bytes.Equal(got, v) {
				t.Fatalf("GetRecord = %v, %v; want %v", got, err, v)
			}
		}
	})

	t.Run("InvalidPut", func(t *testing.T) {
		db := open(t)
		tests := []struct {
			name, kind, id string
			expires        time.Time
		}{
			{"empty kind", "", "id", t0},
			{"empty id", "kind", "", t0},
			{"zero expiry", "kind", "id", time.Time{}},
		}
		for _, tc := range tests {
			if err := db.PutRecord(ctx, tc.kind, tc.id, []byte("v"), tc.expires); err == nil {
				t.Errorf("%s: PutRecord succeeded, want an error", tc.name)
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		db := open(t)
		mustPut(t, db, "login", "tx", []byte("v"), t0.Add(time.Minute))
		mustPut(t, db, "code", "tx", []byte("other kind"), t0.Add(time.Minute))
		if err := db.DeleteRecord(ctx, "login", "tx"); err != nil {
			t.Fatalf("DeleteRecord: %v", err)
		}
		if _, err := db.GetRecord(ctx, "login", "tx", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetRecord after delete err = %v, want ErrNotFound", err)
		}
		if _, err := db.GetRecord(ctx, "code", "tx", t0); err != nil {
			t.Fatalf("DeleteRecord removed a record of another kind: %v", err)
		}
		if err := db.DeleteRecord(ctx, "login", "tx"); err != nil {
			t.Fatalf("DeleteRecord of a missing record: %v, want nil", err)
		}
	})

	t.Run("TakeOnce", func(t *testing.T) {
		db := open(t)
		mustPut(t, db, "code", "c1", []byte("secret"), t0.Add(time.Minute))
		tests := []struct {
			name    string
			now     time.Time
			want    string
			wantErr error
		}{
			{"first take wins", t0, "secret", nil},
			{"second take finds nothing", t0, "", store.ErrNotFound},
		}
		for _, tc := range tests {
			got, err := db.TakeRecord(ctx, "code", "c1", tc.now)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) || string(got) != tc.want {
				t.Fatalf("%s: TakeRecord = %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.wantErr)
			}
		}
		if _, err := db.GetRecord(ctx, "code", "c1", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("record still readable after TakeRecord: %v", err)
		}
	})

	t.Run("TakeExpired", func(t *testing.T) {
		db := open(t)
		mustPut(t, db, "code", "c1", []byte("secret"), t0.Add(time.Minute))
		if _, err := db.TakeRecord(ctx, "code", "c1", t0.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("TakeRecord at expiry err = %v, want ErrNotFound", err)
		}
	})

	t.Run("ConcurrentTakeHasOneWinner", func(t *testing.T) {
		db := open(t)
		mustPut(t, db, "code", "c1", []byte("secret"), t0.Add(time.Minute))
		const takers = 20
		var winners, losers atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range takers {
			wg.Go(func() {
				<-start
				v, err := db.TakeRecord(ctx, "code", "c1", t0)
				switch {
				case err == nil && string(v) == "secret":
					winners.Add(1)
				case errors.Is(err, store.ErrNotFound):
					losers.Add(1)
				default:
					t.Errorf("TakeRecord = %q, %v", v, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if winners.Load() != 1 || losers.Load() != takers-1 {
			t.Fatalf("winners = %d, losers = %d; want 1 and %d", winners.Load(), losers.Load(), takers-1)
		}
	})

	t.Run("Update", func(t *testing.T) {
		db := open(t)
		expires := t0.Add(time.Minute)
		mustPut(t, db, "login", "tx", []byte("a"), expires)
		var seen []byte
		err := db.UpdateRecord(ctx, "login", "tx", t0, func(old []byte) ([]byte, error) {
			seen = old
			return append(bytes.Clone(old), 'b'), nil
		})
		if err != nil {
			t.Fatalf("UpdateRecord: %v", err)
		}
		if string(seen) != "a" {
			t.Fatalf("fn saw %q, want the stored value", seen)
		}
		if got, err := db.GetRecord(ctx, "login", "tx", t0); err != nil || string(got) != "ab" {
			t.Fatalf("after update GetRecord = %q, %v; want ab", got, err)
		}
		// The expiry is kept.
		if _, err := db.GetRecord(ctx, "login", "tx", expires); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UpdateRecord changed the expiry: GetRecord at old expiry err = %v", err)
		}
	})

	t.Run("UpdateMissingOrExpired", func(t *testing.T) {
		db := open(t)
		mustPut(t, db, "login", "tx", []byte("a"), t0.Add(time.Minute))
		tests := []struct {
			name string
			id   string
			now  time.Time
		}{
			{"missing", "nope", t0},
			{"expired", "tx", t0.Add(time.Minute)},
		}
		for _, tc := range tests {
			called := false
			err := db.UpdateRecord(ctx, "login", tc.id, tc.now, func(old []byte) ([]byte, error) {
				called = true
				return old, nil
			})
			if !errors.Is(err, store.ErrNotFound) || called {
				t.Errorf("%s: UpdateRecord err = %v, fn called = %v; want ErrNotFound without calling fn", tc.name, err, called)
			}
		}
	})

	t.Run("UpdateFnErrorWritesNothing", func(t *testing.T) {
		db := open(t)
		mustPut(t, db, "login", "tx", []byte("a"), t0.Add(time.Minute))
		errFn := errors.New("refused by caller")
		err := db.UpdateRecord(ctx, "login", "tx", t0, func([]byte) ([]byte, error) {
			return []byte("changed"), errFn
		})
		if !errors.Is(err, errFn) {
			t.Fatalf("UpdateRecord err = %v, want the callback's error", err)
		}
		if got, _ := db.GetRecord(ctx, "login", "tx", t0); string(got) != "a" {
			t.Fatalf("value after failed update = %q, want unchanged", got)
		}
	})

	t.Run("ConcurrentUpdatesLoseNothing", func(t *testing.T) {
		db := open(t)
		type doc struct{ N int }
		mustPut(t, db, "login", "tx", []byte(`{"N":0}`), t0.Add(time.Minute))
		const writers = 20
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range writers {
			wg.Go(func() {
				<-start
				err := db.UpdateRecord(ctx, "login", "tx", t0, func(old []byte) ([]byte, error) {
					var d doc
					if err := json.Unmarshal(old, &d); err != nil {
						return nil, err
					}
					d.N++
					return json.Marshal(d)
				})
				if err != nil {
					t.Errorf("UpdateRecord: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		got, err := db.GetRecord(ctx, "login", "tx", t0)
		if err != nil {
			t.Fatalf("GetRecord: %v", err)
		}
		var d doc
		if err := json.Unmarshal(got, &d); err != nil || d.N != writers {
			t.Fatalf("counter = %s (%v), want N=%d", got, err, writers)
		}
	})
}

func mustPut(t *testing.T, db Store, kind, id string, value []byte, expires time.Time) {
	t.Helper()
	if err := db.PutRecord(context.Background(), kind, id, value, expires); err != nil {
		t.Fatalf("PutRecord(%s, %s): %v", kind, id, err)
	}
}
