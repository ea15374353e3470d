// Package storetest is the conformance suite for store.DB: every behaviour
// the IdP relies on, written once and run against each SQL backend.
package storetest

import (
	"context"
	"testing"

	"github.com/campusidp/campusidp/store"
)

// Run runs the conformance suite. open must return a DB over an empty,
// migrated database each time it is called (the suite calls it once per
// subtest) and arrange for it to be closed when t ends.
func Run(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("Records", func(t *testing.T) { testRecords(t, open) })
	t.Run("AddRecord", func(t *testing.T) { testAddRecord(t, open) })
	t.Run("Counters", func(t *testing.T) { testCounters(t, open) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("DeleteExpired", func(t *testing.T) { testDeleteExpired(t, open) })
	t.Run("OIDC", func(t *testing.T) { testOIDC(t, open) })
	t.Run("WebAuthn", func(t *testing.T) { testWebAuthn(t, open) })
	t.Run("Ping", func(t *testing.T) {
		if err := open(t).Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}
