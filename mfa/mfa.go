package mfa

import (
	"context"
	"errors"
	"time"
)

// Expected outcomes. Callers show a message for each; none is an outage.
var (
	// ErrCodeInvalid: wrong code, or no code pending.
	ErrCodeInvalid = errors.New("mfa: code invalid")
	// ErrCodeVoided: the pending codes took too many wrong tries; a new one
	// must be requested.
	ErrCodeVoided = errors.New("mfa: code voided by too many tries")
	// ErrCodeExpired: the code's lifetime has passed.
	ErrCodeExpired = errors.New("mfa: code expired")
	// ErrLocked: the account's failure budget is spent; see LockedError for when it ends.
	ErrLocked = errors.New("mfa: too many failed attempts")
	// ErrCooldown: a code was sent moments ago; see CooldownError for how long to wait.
	ErrCooldown = errors.New("mfa: wait before requesting another code")
	// ErrSendLimit: the account's hourly send cap is reached.
	ErrSendLimit = errors.New("mfa: too many codes requested")
	// ErrAddressInvalid and ErrAddressBlocked describe a refused e-mail address.
	ErrAddressInvalid = errors.New("mfa: address invalid")
	ErrAddressBlocked = errors.New("mfa: address not allowed")
)

// ErrRecordNotFound is what a Records implementation returns for a missing or
// expired record.
var ErrRecordNotFound = errors.New("mfa: record not found")

// WaitError carries when a refusal ends (a lock or a cooldown).
type WaitError struct {
	Err   error // ErrLocked or ErrCooldown
	Until time.Time
}

func (e *WaitError) Error() string {
	return e.Err.Error() + " until " + e.Until.UTC().Format(time.RFC3339)
}
func (e *WaitError) Unwrap() error { return e.Err }

// Records stores small expiring values. Update must run fn and write its
// result atomically (compare-and-set), so concurrent verifications of one
// code can never both succeed or lose a try.
type Records interface {
	PutRecord(ctx context.Context, kind, id string, value []byte, expires time.Time) error
	GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error)
	UpdateRecord(ctx context.Context, kind, id string, now time.Time, fn func(old []byte) ([]byte, error)) error
	DeleteRecord(ctx context.Context, kind, id string) error
}

// Counters are fixed-window counters updated atomically by the store.
type Counters interface {
	Hit(ctx context.Context, key string, now time.Time, window time.Duration) (count int, resetAt time.Time, err error)
	Undo(ctx context.Context, key string, now time.Time) error
	Get(ctx context.Context, key string, now time.Time) (count int, resetAt time.Time, err error)
	Reset(ctx context.Context, key string) error
}

// Purpose binds a code to what it was issued for; a code of one purpose never
// passes as another.
type Purpose string

const (
	PurposeLogin Purpose = "login"
	PurposeSetup Purpose = "setup"
	PurposeReset Purpose = "reset"
)
