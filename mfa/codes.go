package mfa

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"golang.org/x/text/width"
)

// CodeConfig holds the security numbers of mailed one-time codes. Every one
// of them comes from config with a safe default.
type CodeConfig struct {
	Digits         int           // 6..10
	Lifetime       time.Duration // login and setup codes
	ResetLifetime  time.Duration // reset confirmation codes
	MaxTries       int           // wrong tries before a code is void
	FailureLimit   int           // account-wide failures per window before a lock
	FailureWindow  time.Duration // the lock lasts until the window ends
	ResendCooldown time.Duration
	SendsPerHour   int
}

// Subject says whose code it is, for what, and for which transaction or
// settings session; Verify accepts a code only for the same Subject.
type Subject struct {
	UserID  string
	Purpose Purpose
	Binding string // login transaction ID or settings-session binding
}

// Codes issues and verifies mailed one-time codes. Codes are stored only as
// HMACs keyed with the server secret.
type Codes struct {
	cfg      CodeConfig
	key      []byte
	records  Records
	counters Counters
	now      func() time.Time
	rand     io.Reader
}

// CodesOption adjusts a Codes (tests inject a clock or a random source).
type CodesOption func(*Codes)

// WithClock sets the clock.
func WithClock(now func() time.Time) CodesOption { return func(c *Codes) { c.now = now } }

// WithRand sets the random source (crypto/rand by default).
func WithRand(r io.Reader) CodesOption { return func(c *Codes) { c.rand = r } }

// NewCodes builds the code service. secret keys the stored hashes.
func NewCodes(cfg CodeConfig, secret []byte, records Records, counters Counters, opts ...CodesOption) (*Codes, error) {
	switch {
	case cfg.Digits < 6 || cfg.Digits > 10:
		return nil, fmt.Errorf("mfa: code digits %d outside 6..10", cfg.Digits)
	case cfg.Lifetime <= 0 || cfg.ResetLifetime <= 0 || cfg.FailureWindow <= 0:
		return nil, errors.New("mfa: lifetimes and windows must be positive")
	case cfg.MaxTries < 1 || cfg.FailureLimit < 1 || cfg.SendsPerHour < 1:
		return nil, errors.New("mfa: tries, failure limit and send cap must be at least 1")
	case len(secret) < 16:
		return nil, errors.New("mfa: secret too short")
	}
	c := &Codes{cfg: cfg, key: append([]byte(nil), secret...), records: records, counters: counters, now: time.Now, rand: rand.Reader}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

const recordCode = "otp_code"

type storedCode struct {
	Hash    string    `json:"h"`
	Expires time.Time `json:"e"`
	Tries   int       `json:"t"`
	Used    bool      `json:"u,omitempty"`
}

// recordID names the pending code of a subject without revealing the user.
func (c *Codes) recordID(s Subject) string {
	return c.mac("id", s.UserID, string(s.Purpose), s.Binding)
}

func (c *Codes) mac(parts ...string) string {
	m := hmac.New(sha256.New, c.key)
	for _, p := range parts {
		// Length-prefixing keeps ("ab","c") and ("a","bc") apart.
		fmt.Fprintf(m, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(m.Sum(nil))
}

func failureKey(userID string) string { return "mfa:fail:" + userID }

// cooldownKey limits resends of one subject (a login, a settings session);
// the hourly send cap limits the account as a whole.
func (c *Codes) cooldownKey(s Subject) string { return "mfa:cool:" + c.recordID(s) }
func sendsKey(userID string) string           { return "mfa:sends:" + userID }

// Issue creates a new code for s, replacing (and so voiding) any pending one.
// The caller mails it; if mailing fails it calls Cancel so nothing is lost.
func (c *Codes) Issue(ctx context.Context, s Subject) (string, error) {
	now := c.now()
	if err := c.checkLock(ctx, s.UserID, now); err != nil {
		return "", err
	}
	n, resetAt, err := c.counters.Hit(ctx, c.cooldownKey(s), now, c.cfg.ResendCooldown)
	if err != nil {
		return "", err
	}
	if n > 1 {
		return "", &WaitError{Err: ErrCooldown, Until: resetAt}
	}
	sends, _, err := c.counters.Hit(ctx, sendsKey(s.UserID), now, time.Hour)
	if err != nil {
		return "", err
	}
	if sends > c.cfg.SendsPerHour {
		return "", ErrSendLimit
	}
	return c.store(ctx, s, now)
}

// Cancel withdraws a code that could not be delivered and gives back the
// cooldown and the send it used, so an outage costs the user nothing.
func (c *Codes) Cancel(ctx context.Context, s Subject) error {
	now := c.now()
	return errors.Join(
		c.records.DeleteRecord(ctx, recordCode, c.recordID(s)),
		c.counters.Reset(ctx, c.cooldownKey(s)),
		c.counters.Undo(ctx, sendsKey(s.UserID), now),
	)
}

func (c *Codes) newCode() (string, error) {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(c.cfg.Digits)), nil)
	n, err := rand.Int(c.rand, max)
	if err != nil {
		return "", fmt.Errorf("mfa: random source: %w", err)
	}
	return fmt.Sprintf("%0*d", c.cfg.Digits, n), nil
}

// NormalizeCode folds what people paste or type on phones (full-width digits,
// spaces, hyphens) into plain digits.
func NormalizeCode(raw string) string {
	s := width.Narrow.String(strings.TrimSpace(raw))
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\t':
			return -1
		}
		return r
	}, s)
}

// Verify checks a code for s. Each call first spends one unit of the
// account-wide failure budget (atomically, so parallel guesses cannot
// overshoot) and gets it back only on success. A code survives at most
// MaxTries wrong tries and is single use.
func (c *Codes) Verify(ctx context.Context, s Subject, raw string) error {
	_, err := c.VerifyAny(ctx, raw, s)
	return err
}

// VerifyAny checks one typed code against the pending codes of several
// subjects of the same user (the reset page accepts the mailed code and a
// helpdesk-issued one in the same box) for the price of one try, and
// returns the subject whose code matched.
func (c *Codes) VerifyAny(ctx context.Context, raw string, subjects ...Subject) (Subject, error) {
	if len(subjects) == 0 {
		return Subject{}, errors.New("mfa: no subject to verify")
	}
	userID := subjects[0].UserID
	for _, s := range subjects[1:] {
		if s.UserID != userID {
			return Subject{}, errors.New("mfa: subjects of different users")
		}
	}
	now := c.now()
	if err := c.spendTry(ctx, userID, now); err != nil {
		return Subject{}, err
	}
	code := NormalizeCode(raw)
	result := error(ErrCodeInvalid)
	for _, s := range subjects {
		err := c.tryCode(ctx, s, code, now)
		switch {
		case err == nil:
			if err := c.counters.Reset(ctx, failureKey(userID)); err != nil {
				return Subject{}, err
			}
			return s, nil
		case errors.Is(err, ErrCodeExpired):
			result = err
		case errors.Is(err, ErrCodeInvalid):
		default:
			// Not the user's failure: give the try back.
			_ = c.counters.Undo(ctx, failureKey(userID), now)
			return Subject{}, err
		}
	}
	return Subject{}, result
}

// tryCode compares code with s's pending code, counting the try on it.
func (c *Codes) tryCode(ctx context.Context, s Subject, code string, now time.Time) error {
	id := c.recordID(s)
	var outcome error
	err := c.records.UpdateRecord(ctx, recordCode, id, now, func(old []byte) ([]byte, error) {
		var sc storedCode
		if err := json.Unmarshal(old, &sc); err != nil {
			return nil, err
		}
		switch {
		case sc.Used || sc.Tries >= c.cfg.MaxTries:
			outcome = ErrCodeInvalid
			return old, nil
		case !now.Before(sc.Expires):
			outcome = ErrCodeExpired
			return old, nil
		}
		sc.Tries++
		want := c.mac("code", id, code)
		if len(code) == c.cfg.Digits && hmac.Equal([]byte(want), []byte(sc.Hash)) {
			sc.Used = true
			outcome = nil
		} else {
			outcome = ErrCodeInvalid
		}
		return json.Marshal(sc)
	})
	switch {
	case errors.Is(err, ErrRecordNotFound):
		return ErrCodeInvalid
	case err != nil:
		return err
	case outcome != nil:
		return outcome
	}
	// Used is already recorded; removing the row is housekeeping.
	_ = c.records.DeleteRecord(ctx, recordCode, id)
	return nil
}

// IssueFor stores a code for s without mailing limits: the helpdesk reads it
// out on the phone after checking the caller (the helpdesk is not subject to
// the user's cooldown or send cap).
func (c *Codes) IssueFor(ctx context.Context, s Subject) (string, error) {
	return c.store(ctx, s, c.now())
}

// store creates and saves a new code for s, replacing any pending one.
func (c *Codes) store(ctx context.Context, s Subject, now time.Time) (string, error) {
	code, err := c.newCode()
	if err != nil {
		return "", err
	}
	lifetime := c.cfg.Lifetime
	if s.Purpose == PurposeReset {
		lifetime = c.cfg.ResetLifetime
	}
	id := c.recordID(s)
	rec, _ := json.Marshal(storedCode{Hash: c.mac("code", id, code), Expires: now.Add(lifetime)})
	// The record outlives the code a little so an expired code is reported as
	// expired rather than unknown.
	if err := c.records.PutRecord(ctx, recordCode, id, rec, now.Add(lifetime+time.Hour)); err != nil {
		return "", err
	}
	return code, nil
}

// spendTry takes one unit from the failure budget, or reports the lock.
func (c *Codes) spendTry(ctx context.Context, userID string, now time.Time) error {
	n, resetAt, err := c.counters.Hit(ctx, failureKey(userID), now, c.cfg.FailureWindow)
	if err != nil {
		return err
	}
	if n > c.cfg.FailureLimit {
		return &WaitError{Err: ErrLocked, Until: resetAt}
	}
	return nil
}

// SpendTry lets another factor (TOTP, recovery codes) share the same budget:
// call it before checking, and Succeeded after a success.
func (c *Codes) SpendTry(ctx context.Context, userID string) error {
	return c.spendTry(ctx, userID, c.now())
}

// Succeeded clears the failure budget after a successful factor check.
func (c *Codes) Succeeded(ctx context.Context, userID string) error {
	return c.counters.Reset(ctx, failureKey(userID))
}

func (c *Codes) checkLock(ctx context.Context, userID string, now time.Time) error {
	n, resetAt, err := c.counters.Get(ctx, failureKey(userID), now)
	if err != nil {
		return err
	}
	if n >= c.cfg.FailureLimit {
		return &WaitError{Err: ErrLocked, Until: resetAt}
	}
	return nil
}

// Lock reports whether the account's factor checks are locked, and until when.
func (c *Codes) Lock(ctx context.Context, userID string) (bool, time.Time, error) {
	err := c.checkLock(ctx, userID, c.now())
	var we *WaitError
	if errors.As(err, &we) {
		return true, we.Until, nil
	}
	return false, time.Time{}, err
}

// Failures returns how much of the failure budget is spent in the current window.
func (c *Codes) Failures(ctx context.Context, userID string) (int, error) {
	n, _, err := c.counters.Get(ctx, failureKey(userID), c.now())
	return n, err
}

// Unlock clears the failure budget (helpdesk action).
func (c *Codes) Unlock(ctx context.Context, userID string) error {
	return c.counters.Reset(ctx, failureKey(userID))
}
