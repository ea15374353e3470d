package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campusidp/campusidp/internal/testpg"
	"github.com/campusidp/campusidp/store"
	"github.com/campusidp/campusidp/store/storetest"
)

func openPostgres(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenPostgres(context.Background(), testpg.DSN(t), nil)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestPostgresConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openPostgres(t) })
}

// TestPostgresFirstSigningKeyIsCreatedOnce: instances starting together on
// an empty database each try to create the first OIDC signing key; exactly
// one succeeds and the others are told to reload.
func TestPostgresFirstSigningKeyIsCreatedOnce(t *testing.T) {
	ctx := context.Background()
	dsn := testpg.DSN(t)
	const instances = 6
	dbs := make([]*store.DB, instances)
	for i := range dbs {
		db, err := store.OpenPostgres(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	now := time.Now()
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, db := range dbs {
		wg.Go(func() {
			<-start
			key := store.OIDCSigningKey{ID: fmt.Sprintf("k%d", i), Algorithm: "RS256",
				PublicJWK: []byte("{}"), PrivateKey: []byte("sealed"), Created: now}
			switch err := db.RotateOIDCSigningKey(ctx, key, "", now, now.Add(time.Hour)); {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("RotateOIDCSigningKey: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	keys, err := dbs[0].ListOIDCSigningKeys(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	signing := 0
	for _, k := range keys {
		if k.Retired.IsZero() {
			signing++
		}
	}
	if wins.Load() != 1 || conflicts.Load() != instances-1 || signing != 1 {
		t.Fatalf("wins %d, conflicts %d, signing keys %d; want 1, %d, 1", wins.Load(), conflicts.Load(), signing, instances-1)
	}
}
