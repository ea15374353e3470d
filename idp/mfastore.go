package idp

import (
	"context"
	"errors"
	"time"

	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

// mfaStore adapts the app's store to the small interfaces of package mfa.
type mfaStore struct{ s Store }

var (
	_ mfa.Records        = mfaStore{}
	_ mfa.Counters       = mfaStore{}
	_ mfa.PrefixResetter = mfaStore{}
)

func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return mfa.ErrRecordNotFound
	}
	return err
}

func (m mfaStore) PutRecord(ctx context.Context, kind, id string, v []byte, exp time.Time) error {
	return m.s.PutRecord(ctx, kind, id, v, exp)
}

func (m mfaStore) GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error) {
	v, err := m.s.GetRecord(ctx, kind, id, now)
	return v, notFound(err)
}

// UpdateRecord spends a code's tries and its single use: parallel guesses
// must each see the others' tries, so it is written at once rather than
// with the request's other changes.
func (m mfaStore) UpdateRecord(ctx context.Context, kind, id string, now time.Time, fn func([]byte) ([]byte, error)) error {
	return notFound(m.s.UpdateRecord(store.SpendAtOnce(ctx), kind, id, now, fn))
}

// ResetPrefix lets mfa.Codes.Unlock clear the per-session budgets.
func (m mfaStore) ResetPrefix(ctx context.Context, prefix string) error {
	_, err := m.s.ResetCountersWithPrefix(ctx, prefix)
	return err
}

func (m mfaStore) DeleteRecord(ctx context.Context, kind, id string) error {
	return m.s.DeleteRecord(ctx, kind, id)
}

func (m mfaStore) Hit(ctx context.Context, key string, now time.Time, window time.Duration) (int, time.Time, error) {
	c, err := m.s.HitCounter(ctx, key, now, window)
	return c.Count, c.ResetAt, err
}

func (m mfaStore) Undo(ctx context.Context, key string, now time.Time) error {
	return m.s.UndoCounter(ctx, key, now)
}

func (m mfaStore) Get(ctx context.Context, key string, now time.Time) (int, time.Time, error) {
	c, err := m.s.GetCounter(ctx, key, now)
	return c.Count, c.ResetAt, err
}

func (m mfaStore) Reset(ctx context.Context, key string) error { return m.s.ResetCounter(ctx, key) }
