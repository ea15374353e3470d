// Package storetest is the public conformance suite of the IdP's store:
// every behaviour the login core (package idp) and the protocol front-ends
// (idp/oidcprovider, idp/samlprovider) rely on, written once and run
// against each backend, like dex's storage/conformance.
//
// The project runs it on store.DB with SQLite and PostgreSQL. A program
// that brings its own store (another database, a key-value service) runs it
// from its own tests:
//
//	func TestMyStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Store {
//			s := mystore.OpenEmpty(t)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// A store that passes can be given to idp.New (Store, and Sessions from its
// Sessions method) and to the front-ends.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

// Store is everything the suite checks: the union of idp.Store,
// oidcprovider.Store and samlprovider.Store, plus the housekeeping a
// deployment calls periodically (DeleteExpired). Missing records are
// store.ErrNotFound; the other sentinel errors are those of package store.
type Store interface {
	// Expiring records (login transactions, OIDC requests and codes, SAML
	// requests): kind and id form the key; expired records are absent.
	PutRecord(ctx context.Context, kind, id string, value []byte, expires time.Time) error
	AddRecord(ctx context.Context, kind, id string, value []byte, expires, now time.Time) error
	GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error)
	TakeRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error)
	DeleteRecord(ctx context.Context, kind, id string) error
	UpdateRecord(ctx context.Context, kind, id string, now time.Time, fn func(old []byte) ([]byte, error)) error

	// Attempt counters with sliding windows, atomic across instances.
	HitCounter(ctx context.Context, key string, now time.Time, window time.Duration) (store.Counter, error)
	UndoCounter(ctx context.Context, key string, now time.Time) error
	GetCounter(ctx context.Context, key string, now time.Time) (store.Counter, error)
	ResetCounter(ctx context.Context, key string) error
	ResetCountersWithPrefix(ctx context.Context, prefix string) (int, error)

	// The append-only audit log.
	AppendAudit(ctx context.Context, e store.AuditEvent) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)

	// Browser sessions and which user each belongs to.
	Sessions() store.BrowserSessions
	BindSessionUser(ctx context.Context, token, userID string) error
	DeleteUserSessions(ctx context.Context, userID, exceptToken string) (int, error)

	// OpenID Connect grants, tokens and signing keys.
	CreateOIDCGrant(ctx context.Context, g store.OIDCGrant, tokens ...store.OIDCToken) error
	RotateOIDCRefreshToken(ctx context.Context, oldID string, now time.Time, tokens ...store.OIDCToken) error
	GetOIDCToken(ctx context.Context, id string, now time.Time) (*store.OIDCToken, error)
	DeleteOIDCToken(ctx context.Context, id string) error
	RevokeOIDCGrant(ctx context.Context, grantID string, now, keepUntil time.Time) error
	RevokeOIDCUserGrants(ctx context.Context, userID, clientID string, now time.Time) (int, error)
	ListOIDCSigningKeys(ctx context.Context, now time.Time) ([]store.OIDCSigningKey, error)
	RotateOIDCSigningKey(ctx context.Context, next store.OIDCSigningKey, expectCurrent string, now, publishUntil time.Time) error
	RetireOIDCSigningKey(ctx context.Context, id string, now, publishUntil time.Time) error
	DeleteExpiredOIDC(ctx context.Context, now time.Time) (int64, error)

	// Security keys (WebAuthn credentials).
	AddWebAuthnCredential(ctx context.Context, c store.WebAuthnCredential) error
	WebAuthnCredentials(ctx context.Context, userID string) ([]store.WebAuthnCredential, error)
	GetWebAuthnCredential(ctx context.Context, id string) (store.WebAuthnCredential, error)
	UseWebAuthnCredential(ctx context.Context, id string, prevUses int64, signCount uint32, data []byte, now time.Time) error
	RenameWebAuthnCredential(ctx context.Context, userID, id, name string) error
	DeleteWebAuthnCredential(ctx context.Context, userID, id string) error
	DeleteUserWebAuthnCredentials(ctx context.Context, userID string) (int, error)

	// Housekeeping: reachability (readiness) and garbage collection.
	Ping(ctx context.Context) error
	DeleteExpired(ctx context.Context, now time.Time) (int64, error)
}

var _ UnitStore = (*store.DB)(nil)

// Run runs the conformance suite. open must return a store over empty
// storage each time it is called (the suite calls it once per subtest) and
// arrange for it to be closed when t ends.
func Run(t *testing.T, open func(t *testing.T) Store) {
	t.Run("Records", func(t *testing.T) { testRecords(t, open) })
	t.Run("AddRecord", func(t *testing.T) { testAddRecord(t, open) })
	t.Run("Counters", func(t *testing.T) { testCounters(t, open) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("DeleteExpired", func(t *testing.T) { testDeleteExpired(t, open) })
	t.Run("OIDC", func(t *testing.T) { testOIDC(t, open) })
	t.Run("WebAuthn", func(t *testing.T) { testWebAuthn(t, open) })
	t.Run("Unit", func(t *testing.T) { testUnit(t, open) })
	t.Run("Ping", func(t *testing.T) {
		if err := open(t).Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}
