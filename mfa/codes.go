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
	Digits        int           // 6..10
	Lifetime      time.Duration // login and setup codes
	ResetLifetime time.Duration // reset confirmation codes
	MaxTries      int           // wrong tries before a code is void
	FailureLimit  int           // failures per session (or owner's browser) and window before a lock
	FailureWindow time.Duration // a lock lasts until its window ends
	// AccountFailureLimit is the account-wide ceiling over all sessions
	// without an owner's browser cookie (NIST SP 800-63B: at most 100).
	AccountFailureLimit int
	ResendCooldown      time.Duration
	SendsPerHour        int
	MaxOutstanding      int // codes of one subject that stay valid at once (1..10)
}

// Subject says whose code it is, for what, and where it may be used;
// Verify accepts a code only for the same UserID, Purpose and Binding.
type Subject struct {
	UserID  string
	Purpose Purpose
	// Binding scopes a code: empty for codes mailed to the registered
	// address (any session of the user that passed the password may use
	// them), a settings-session and address binding for setup codes,
	// "helpdesk" for codes read out by staff.
	Binding string
	// Session is the browser session asking or trying; wrong tries on a
	// code, and the small failure budget, are counted per session.
	Session string
	// Device identifies a cookie of the owner's that the browser holds (a
	// trusted-browser or device cookie, as an opaque server-side id), or is
	// empty. Such a browser spends a budget of its own, keyed on the cookie
	// rather than the session so new sessions do not refill it, and is not
	// subject to the account-wide ceiling: failures made elsewhere cannot
	// lock the owner out.
	Device string
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
	alarm    func(ctx context.Context, userID string, until time.Time)
}

// CodesOption adjusts a Codes (tests inject a clock or a random source).
type CodesOption func(*Codes)

// WithClock sets the clock.
func WithClock(now func() time.Time) CodesOption { return func(c *Codes) { c.now = now } }

// WithRand sets the random source (crypto/rand by default).
func WithRand(r io.Reader) CodesOption { return func(c *Codes) { c.rand = r } }

// WithCeilingAlarm sets what runs (once per window) when the account-wide
// failure ceiling of a user is reached: the caller audits and mails the owner.
func WithCeilingAlarm(fn func(ctx context.Context, userID string, until time.Time)) CodesOption {
	return func(c *Codes) { c.alarm = fn }
}

// NewCodes builds the code service. secret keys the stored hashes.
func NewCodes(cfg CodeConfig, secret []byte, records Records, counters Counters, opts ...CodesOption) (*Codes, error) {
	switch {
	case cfg.Digits < 6 || cfg.Digits > 10:
		return nil, fmt.Errorf("mfa: code digits %d outside 6..10", cfg.Digits)
	case cfg.Lifetime <= 0 || cfg.ResetLifetime <= 0 || cfg.FailureWindow <= 0:
		return nil, errors.New("mfa: lifetimes and windows must be positive")
	case cfg.MaxTries < 1 || cfg.FailureLimit < 1 || cfg.SendsPerHour < 1:
		return nil, errors.New("mfa: tries, failure limit and send cap must be at least 1")
	case cfg.AccountFailureLimit < cfg.FailureLimit || cfg.AccountFailureLimit > 100:
		return nil, fmt.Errorf("mfa: account failure limit %d outside %d..100", cfg.AccountFailureLimit, cfg.FailureLimit)
	case cfg.MaxOutstanding < 1 || cfg.MaxOutstanding > 10:
		return nil, fmt.Errorf("mfa: outstanding codes %d outside 1..10", cfg.MaxOutstanding)
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

// storedCodes are the outstanding codes of one subject, oldest first. A few
// are kept so that a code already mailed keeps working after another login
// or a resend, until one of them is used.
type storedCodes struct {
	Codes []storedCode `json:"c"`
}

type storedCode struct {
	Hash    string    `json:"h"`
	Issued  time.Time `json:"i"`
	Expires time.Time `json:"e"`
	// Tries counts wrong tries per presenting session (keyed hash), so
	// guesses in one session cannot void the code another is waiting for.
	Tries map[string]int `json:"t,omitempty"`
	Used  bool           `json:"u,omitempty"`
}

// state says whether a code can still be tried from session (a keyed hash).
func (sc *storedCode) state(session string, maxTries int, now time.Time) error {
	switch {
	case sc.Used:
		return ErrCodeInvalid
	case sc.Tries[session] >= maxTries:
		return ErrCodeVoided
	case !now.Before(sc.Expires):
		return ErrCodeExpired
	}
	return nil
}

// recordID names the pending codes of a subject without revealing the user.
func (c *Codes) recordID(s Subject) string {
	return c.mac("id", s.UserID, string(s.Purpose), s.Binding)
}

func (c *Codes) sessionKey(s Subject) string { return c.mac("session", s.Session)[:16] }

func (c *Codes) mac(parts ...string) string {
	m := hmac.New(sha256.New, c.key)
	for _, p := range parts {
		// Length-prefixing keeps ("ab","c") and ("a","bc") apart.
		fmt.Fprintf(m, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(m.Sum(nil))
}

func failureKey(userID string) string { return "mfa:fail:" + userID }

// budgetPrefix starts the keys of the small per-session and per-device
// budgets of a user, so Unlock can clear them all (IDs never contain "|").
func budgetPrefix(userID string) string { return "mfa:fails:" + userID + "|" }

// budgetKey is the small budget s spends from: its owner's browser cookie
// when it has one, else its session.
func (c *Codes) budgetKey(s Subject) string {
	if s.Device != "" {
		return budgetPrefix(s.UserID) + "d:" + c.mac("device", s.Device)[:24]
	}
	return budgetPrefix(s.UserID) + "s:" + c.sessionKey(s)
}

// cooldownKey limits the mails of one subject: with a user-wide binding
// (login, reset) that is one mail per user and cooldown, however many
// logins or reloads ask; the hourly send cap limits the account as a whole.
func (c *Codes) cooldownKey(s Subject) string { return "mfa:cool:" + c.recordID(s) }
func sendsKey(userID string) string           { return "mfa:sends:" + userID }

// Issue creates a new code for s. Up to MaxOutstanding earlier codes of s
// stay valid until one of them is used; older ones are dropped. The caller
// mails it; if mailing fails it calls Cancel so nothing is lost.
func (c *Codes) Issue(ctx context.Context, s Subject) (string, error) {
	return c.issue(ctx, s, false)
}

// Replace is Issue for a code whose meaning changed (a different address
// being registered): the earlier codes of s are voided.
func (c *Codes) Replace(ctx context.Context, s Subject) (string, error) {
	return c.issue(ctx, s, true)
}

func (c *Codes) issue(ctx context.Context, s Subject, replace bool) (string, error) {
	now := c.now()
	if err := c.checkBudgets(ctx, s, now); err != nil {
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
	return c.store(ctx, s, now, replace)
}

// Outstanding returns when the newest code of s that s.Session can still
// use was issued, or the zero time when there is none. Pages use it to show
// "a code was sent" instead of sending another.
func (c *Codes) Outstanding(ctx context.Context, s Subject) (time.Time, error) {
	now := c.now()
	set, err := c.load(ctx, s, now)
	if err != nil {
		return time.Time{}, err
	}
	sess := c.sessionKey(s)
	for i := len(set.Codes) - 1; i >= 0; i-- {
		if set.Codes[i].state(sess, c.cfg.MaxTries, now) == nil {
			return set.Codes[i].Issued, nil
		}
	}
	return time.Time{}, nil
}

func (c *Codes) load(ctx context.Context, s Subject, now time.Time) (storedCodes, error) {
	var set storedCodes
	raw, err := c.records.GetRecord(ctx, recordCode, c.recordID(s), now)
	if errors.Is(err, ErrRecordNotFound) {
		return set, nil
	}
	if err != nil {
		return set, err
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return set, fmt.Errorf("mfa: decoding codes: %w", err)
	}
	return set, nil
}

// Cancel withdraws the newest code of s, which could not be delivered, and
// gives back the cooldown and the send it used, so an outage costs the user
// nothing.
func (c *Codes) Cancel(ctx context.Context, s Subject) error {
	now := c.now()
	id := c.recordID(s)
	err := c.records.UpdateRecord(ctx, recordCode, id, now, func(old []byte) ([]byte, error) {
		var set storedCodes
		if err := json.Unmarshal(old, &set); err != nil {
			return nil, err
		}
		if n := len(set.Codes); n > 0 {
			set.Codes = set.Codes[:n-1]
		}
		return json.Marshal(set)
	})
	if errors.Is(err, ErrRecordNotFound) {
		err = nil
	}
	return errors.Join(
		err,
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
// session's (or owner's browser's) failure budget and of the account-wide
// ceiling (atomically, so parallel guesses cannot overshoot) and gets them
// back only on success. A code survives at most
// MaxTries wrong tries from one session and is single use; using one voids
// the other outstanding codes of s.
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
		if s.UserID != userID || s.Session != subjects[0].Session || s.Device != subjects[0].Device {
			return Subject{}, errors.New("mfa: subjects of different users or sessions")
		}
	}
	now := c.now()
	if err := c.spendTry(ctx, subjects[0], now); err != nil {
		return Subject{}, err
	}
	code := NormalizeCode(raw)
	result := error(ErrCodeInvalid)
	for _, s := range subjects {
		err := c.tryCode(ctx, s, code, now)
		switch {
		case err == nil:
			// The next login needs a new code at once: the cooldown only
			// holds back mails while one is on its way.
			if err := errors.Join(c.succeeded(ctx, s), c.counters.Reset(ctx, c.cooldownKey(s))); err != nil {
				return Subject{}, err
			}
			return s, nil
		case errors.Is(err, ErrCodeVoided):
			result = err
		case errors.Is(err, ErrCodeExpired):
			if !errors.Is(result, ErrCodeVoided) {
				result = err
			}
		case errors.Is(err, ErrCodeInvalid):
		default:
			// Not the user's failure: give the try back.
			c.undoTry(ctx, s, now)
			return Subject{}, err
		}
	}
	return Subject{}, result
}

// tryCode compares code with s's outstanding codes, counting the try on
// each of them that is still live for s.Session.
func (c *Codes) tryCode(ctx context.Context, s Subject, code string, now time.Time) error {
	id := c.recordID(s)
	sess := c.sessionKey(s)
	want := c.mac("code", id, code)
	var outcome error
	err := c.records.UpdateRecord(ctx, recordCode, id, now, func(old []byte) ([]byte, error) {
		var set storedCodes
		if err := json.Unmarshal(old, &set); err != nil {
			return nil, err
		}
		// What the user is told when nothing matches: a voided code
		// ("request a new one") before an expired one before "incorrect".
		outcome = ErrCodeInvalid
		live := 0
		for i := range set.Codes {
			sc := &set.Codes[i]
			switch st := sc.state(sess, c.cfg.MaxTries, now); {
			case st == nil:
			case errors.Is(st, ErrCodeExpired) && outcome == ErrCodeInvalid:
				outcome = ErrCodeExpired
				continue
			default:
				continue
			}
			if len(code) == c.cfg.Digits && hmac.Equal([]byte(want), []byte(sc.Hash)) {
				// Single use: this code and every other outstanding one.
				for j := range set.Codes {
					set.Codes[j].Used = true
				}
				outcome = nil
				return json.Marshal(set)
			}
			if sc.Tries == nil {
				sc.Tries = map[string]int{}
			}
			sc.Tries[sess]++
			if sc.Tries[sess] < c.cfg.MaxTries {
				live++
			}
		}
		if live == 0 {
			for i := range set.Codes {
				if errors.Is(set.Codes[i].state(sess, c.cfg.MaxTries, now), ErrCodeVoided) && now.Before(set.Codes[i].Expires) {
					outcome = ErrCodeVoided
				}
			}
		}
		return json.Marshal(set)
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

// Void withdraws every outstanding code of s and ends its cooldown: the
// address they went to is no longer the user's (reset, address change),
// and the next login must mail the new one at once.
func (c *Codes) Void(ctx context.Context, s Subject) error {
	err := c.records.DeleteRecord(ctx, recordCode, c.recordID(s))
	if errors.Is(err, ErrRecordNotFound) {
		err = nil
	}
	return errors.Join(err, c.counters.Reset(ctx, c.cooldownKey(s)))
}

// IssueFor stores a code for s without mailing limits: the helpdesk reads it
// out on the phone after checking the caller (the helpdesk is not subject to
// the user's cooldown or send cap). It replaces any earlier one.
func (c *Codes) IssueFor(ctx context.Context, s Subject) (string, error) {
	return c.store(ctx, s, c.now(), true)
}

// store creates and saves a new code for s next to the outstanding ones
// (or in their place with replace). Issue's cooldown keeps two stores of
// one subject from racing; a try counted between the read and the write
// may be lost, which the atomic account-wide budget still counts.
func (c *Codes) store(ctx context.Context, s Subject, now time.Time, replace bool) (string, error) {
	code, err := c.newCode()
	if err != nil {
		return "", err
	}
	lifetime := c.cfg.Lifetime
	if s.Purpose == PurposeReset {
		lifetime = c.cfg.ResetLifetime
	}
	id := c.recordID(s)
	var set storedCodes
	if !replace {
		if set, err = c.load(ctx, s, now); err != nil {
			return "", err
		}
	}
	kept := set.Codes[:0]
	for _, sc := range set.Codes {
		if !sc.Used && now.Before(sc.Expires) {
			kept = append(kept, sc)
		}
	}
	if n := len(kept) - (c.cfg.MaxOutstanding - 1); n > 0 {
		kept = kept[n:]
	}
	set.Codes = append(kept, storedCode{Hash: c.mac("code", id, code), Issued: now, Expires: now.Add(lifetime)})
	rec, _ := json.Marshal(set)
	// The record outlives the codes a little so an expired code is reported
	// as expired rather than unknown.
	if err := c.records.PutRecord(ctx, recordCode, id, rec, now.Add(lifetime+time.Hour)); err != nil {
		return "", err
	}
	return code, nil
}

// spendTry takes one unit from s's own budget and, unless s is an owner's
// browser, one from the account-wide ceiling, or reports the lock. Reaching
// the ceiling raises the alarm once per window (the counter passes that
// value once, atomically).
func (c *Codes) spendTry(ctx context.Context, s Subject, now time.Time) error {
	n, resetAt, err := c.counters.Hit(ctx, c.budgetKey(s), now, c.cfg.FailureWindow)
	if err != nil {
		return err
	}
	if n > c.cfg.FailureLimit {
		return &WaitError{Err: ErrLocked, Until: resetAt}
	}
	if s.Device != "" {
		return nil
	}
	n, resetAt, err = c.counters.Hit(ctx, failureKey(s.UserID), now, c.cfg.FailureWindow)
	if err != nil {
		_ = c.counters.Undo(ctx, c.budgetKey(s), now)
		return err
	}
	if n == c.cfg.AccountFailureLimit && c.alarm != nil {
		c.alarm(ctx, s.UserID, resetAt)
	}
	if n > c.cfg.AccountFailureLimit {
		// The session did nothing wrong this time: its own budget is kept.
		_ = c.counters.Undo(ctx, c.budgetKey(s), now)
		return &WaitError{Err: ErrLocked, Until: resetAt}
	}
	return nil
}

// undoTry gives back a try that failed for a reason not the user's.
func (c *Codes) undoTry(ctx context.Context, s Subject, now time.Time) {
	_ = c.counters.Undo(ctx, c.budgetKey(s), now)
	if s.Device == "" {
		_ = c.counters.Undo(ctx, failureKey(s.UserID), now)
	}
}

// succeeded clears s's budget and the account-wide count (the ceiling is
// on consecutive failures). Locked sessions of others stay locked.
func (c *Codes) succeeded(ctx context.Context, s Subject) error {
	return errors.Join(c.counters.Reset(ctx, c.budgetKey(s)), c.counters.Reset(ctx, failureKey(s.UserID)))
}

// SpendTry lets another factor (TOTP, recovery codes, security keys) share
// the same budgets: call it before checking, and Succeeded after a success.
// s needs UserID, Session and Device.
func (c *Codes) SpendTry(ctx context.Context, s Subject) error {
	return c.spendTry(ctx, s, c.now())
}

// Succeeded clears the failure budgets after a successful factor check.
func (c *Codes) Succeeded(ctx context.Context, s Subject) error {
	return c.succeeded(ctx, s)
}

// checkBudgets refuses to mail a code to a session that could not use it.
func (c *Codes) checkBudgets(ctx context.Context, s Subject, now time.Time) error {
	n, resetAt, err := c.counters.Get(ctx, c.budgetKey(s), now)
	if err != nil {
		return err
	}
	if n >= c.cfg.FailureLimit {
		return &WaitError{Err: ErrLocked, Until: resetAt}
	}
	if s.Device != "" {
		return nil
	}
	return c.checkLock(ctx, s.UserID, now)
}

// checkLock reports the account-wide ceiling.
func (c *Codes) checkLock(ctx context.Context, userID string, now time.Time) error {
	n, resetAt, err := c.counters.Get(ctx, failureKey(userID), now)
	if err != nil {
		return err
	}
	if n >= c.cfg.AccountFailureLimit {
		return &WaitError{Err: ErrLocked, Until: resetAt}
	}
	return nil
}

// Lock reports whether the account-wide ceiling is reached (sessions without
// an owner's browser cookie are refused), and until when.
func (c *Codes) Lock(ctx context.Context, userID string) (bool, time.Time, error) {
	err := c.checkLock(ctx, userID, c.now())
	var we *WaitError
	if errors.As(err, &we) {
		return true, we.Until, nil
	}
	return false, time.Time{}, err
}

// Failures returns how much of the account-wide ceiling is spent in the current window.
func (c *Codes) Failures(ctx context.Context, userID string) (int, error) {
	n, _, err := c.counters.Get(ctx, failureKey(userID), c.now())
	return n, err
}

// PrefixResetter is implemented by Counters that can clear every key with a
// prefix; Unlock then clears the per-session budgets too.
type PrefixResetter interface {
	ResetPrefix(ctx context.Context, prefix string) error
}

// Unlock clears the failure budgets (helpdesk action).
func (c *Codes) Unlock(ctx context.Context, userID string) error {
	err := c.counters.Reset(ctx, failureKey(userID))
	if pr, ok := c.counters.(PrefixResetter); ok {
		err = errors.Join(err, pr.ResetPrefix(ctx, budgetPrefix(userID)))
	}
	return err
}
