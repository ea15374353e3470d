package store_test

import (
	"context"
	"testing"

	"github.com/campusidp/campusidp/internal/store"
	"github.com/campusidp/campusidp/internal/store/storetest"
	"github.com/campusidp/campusidp/internal/testpg"
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
	storetest.Run(t, openPostgres)
}
