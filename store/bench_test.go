package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

func benchDB(b *testing.B) *store.DB {
	b.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func BenchmarkHitCounterSameKey(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.HitCounter(ctx, "hot", time.Now(), time.Minute); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLoginMix approximates the store traffic of one login with an
// emailed code: a login transaction written, read and updated, two counter
// hits, a code put and taken, a session committed and bound, two audit events.
// One op is one login.
func BenchmarkLoginMix(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	sessions := db.SessionStore()
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			id := fmt.Sprint(n)
			user := fmt.Sprintf("user%d", n%500)
			now := time.Now()
			check := func(err error) bool {
				if err != nil {
					b.Error(err)
				}
				return err == nil
			}
			if !check(db.PutRecord(ctx, "login", id, []byte(`{"step":"password"}`), now.Add(10*time.Minute))) {
				return
			}
			_, err := db.GetRecord(ctx, "login", id, now)
			check(err)
			_, err = db.HitCounter(ctx, "pw:"+user, now, 15*time.Minute)
			check(err)
			check(db.UpdateRecord(ctx, "login", id, now, func([]byte) ([]byte, error) { return []byte(`{"step":"mfa"}`), nil }))
			check(db.PutRecord(ctx, "otp", id, []byte("hash"), now.Add(5*time.Minute)))
			_, err = db.HitCounter(ctx, "otp:"+user, now, 15*time.Minute)
			check(err)
			_, err = db.TakeRecord(ctx, "otp", id, now)
			check(err)
			check(sessions.CommitCtx(ctx, "tok"+id, []byte("session data of a few hundred bytes"), now.Add(8*time.Hour)))
			check(db.BindSessionUser(ctx, "tok"+id, user))
			check(db.AppendAudit(ctx, store.AuditEvent{Type: "login.password", Subject: user}))
			check(db.AppendAudit(ctx, store.AuditEvent{Type: "login.success", Subject: user}))
			check(db.DeleteRecord(ctx, "login", id))
		}
	})
}
