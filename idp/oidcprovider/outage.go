package oidcprovider

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/store"
)

// op answers every error a storage method returns with 500 server_error;
// it has no notion of an outage. An outageNote travels in the context of
// the requests op serves, the store and directory calls beneath them mark
// it when they fail as outages, and the answer becomes the 503 with
// Retry-After that every other outage gets (the client may retry: nothing
// was used up).
type outageNote struct{ seen atomic.Bool }

type outageNoteKey struct{}

// noteOutage marks the request's note when err is an outage; it returns err.
func noteOutage(ctx context.Context, err error) error {
	if err != nil && idp.IsUnavailable(err) {
		if n, ok := ctx.Value(outageNoteKey{}).(*outageNote); ok {
			n.seen.Store(true)
		}
	}
	return err
}

// notingStore is the provider's store with its request-path calls noting
// outages.
type notingStore struct{ Store }

var _ Store = notingStore{}

func (s notingStore) PutRecord(ctx context.Context, kind, id string, value []byte, expires time.Time) error {
	return noteOutage(ctx, s.Store.PutRecord(ctx, kind, id, value, expires))
}

func (s notingStore) GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error) {
	v, err := s.Store.GetRecord(ctx, kind, id, now)
	return v, noteOutage(ctx, err)
}

func (s notingStore) DeleteRecord(ctx context.Context, kind, id string) error {
	return noteOutage(ctx, s.Store.DeleteRecord(ctx, kind, id))
}

func (s notingStore) UpdateRecord(ctx context.Context, kind, id string, now time.Time, fn func(old []byte) ([]byte, error)) error {
	return noteOutage(ctx, s.Store.UpdateRecord(ctx, kind, id, now, fn))
}

func (s notingStore) CreateOIDCGrant(ctx context.Context, g store.OIDCGrant, tokens ...store.OIDCToken) error {
	return noteOutage(ctx, s.Store.CreateOIDCGrant(ctx, g, tokens...))
}

func (s notingStore) RotateOIDCRefreshToken(ctx context.Context, oldID string, now time.Time, tokens ...store.OIDCToken) error {
	return noteOutage(ctx, s.Store.RotateOIDCRefreshToken(ctx, oldID, now, tokens...))
}

func (s notingStore) GetOIDCToken(ctx context.Context, id string, now time.Time) (*store.OIDCToken, error) {
	t, err := s.Store.GetOIDCToken(ctx, id, now)
	return t, noteOutage(ctx, err)
}

func (s notingStore) DeleteOIDCToken(ctx context.Context, id string) error {
	return noteOutage(ctx, s.Store.DeleteOIDCToken(ctx, id))
}

func (s notingStore) RevokeOIDCGrant(ctx context.Context, grantID string, now, keepUntil time.Time) error {
	return noteOutage(ctx, s.Store.RevokeOIDCGrant(ctx, grantID, now, keepUntil))
}

// notingDirectory does the same for account lookups.
type notingDirectory struct{ Directory }

func (d notingDirectory) Lookup(ctx context.Context, id string) (*ldapstore.User, error) {
	u, err := d.Directory.Lookup(ctx, id)
	return u, noteOutage(ctx, err)
}

// HitCounters keeps store.HitAll's one statement through the wrapper.
func (s notingStore) HitCounters(ctx context.Context, now time.Time, hits ...store.CounterHit) ([]store.Counter, error) {
	return store.HitAll(ctx, s.Store, now, hits...)
}
