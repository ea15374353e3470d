package idp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

// Records of the second-factor settings. Factor settings never expire; the
// far-future expiry keeps them in the same expiring-record table as the rest.
const (
	recordFactors      = "mfa_factors"
	recordTrusted      = "trusted_browser"
	recordTrustedIndex = "trusted_index"
	trustedCookie      = "idp_trusted"
)

var forever = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// EmailFactor is a registered private address for mailed one-time passwords.
type EmailFactor struct {
	Address    string    `json:"address"`
	EnrolledAt time.Time `json:"enrolled_at"`
	LastUsed   time.Time `json:"last_used,omitzero"`
}

// TOTPFactor is a registered authenticator app.
type TOTPFactor struct {
	Secret     string    `json:"secret"` // sealed with mfa.SecretBox, bound to the user ID
	EnrolledAt time.Time `json:"enrolled_at"`
	LastUsed   time.Time `json:"last_used,omitzero"`
	// LastStep is the time step of the last accepted code; a code of this
	// step or an earlier one is never accepted again.
	LastStep int64 `json:"last_step"`
}

// KeysFactor summarises the user's security keys and passkeys, kept by the
// security-key plug-in (see KeyFactor), so the login steps know of them
// without reading the credentials.
type KeysFactor struct {
	Count    int       `json:"count"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// Factor methods, as recorded in sessions, audit events and AuthResult.
const (
	methodEmail          = "email_otp"
	methodTOTP           = "totp"
	methodRecovery       = "recovery_code"
	methodTrustedBrowser = "trusted_browser"
)

// Factors are a user's second-factor settings.
type Factors struct {
	Email *EmailFactor `json:"email,omitempty"`
	TOTP  *TOTPFactor  `json:"totp,omitempty"`
	Keys  *KeysFactor  `json:"keys,omitempty"`
	// Recovery holds keyed hashes of the unused recovery codes.
	Recovery []string `json:"recovery,omitempty"`
	// Preferred is the method used last ("email_otp" or "totp"); the login
	// page offers it first.
	Preferred string    `json:"preferred,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Enrolled reports whether the user has any second factor.
func (f *Factors) Enrolled() bool {
	return f != nil && (f.Email != nil || f.TOTP != nil || f.Keys != nil)
}

// DefaultMethod is the factor the login page shows first.
func (f *Factors) DefaultMethod() string {
	switch {
	case f.Keys != nil && (f.Preferred == MethodSecurityKey || (f.Email == nil && f.TOTP == nil)):
		return MethodSecurityKey
	case f.Preferred == methodEmail && f.Email != nil, f.TOTP == nil:
		return methodEmail
	default:
		return methodTOTP
	}
}

// loadFactors returns the user's factor settings (empty when none are
// registered). A request reads them once: the login steps ask several
// times. Callers must not modify the result; changes go through
// updateFactors.
func (a *App) loadFactors(ctx context.Context, userID string) (*Factors, error) {
	rs, _ := ctx.Value(ctxRequestState).(*requestState)
	if rs != nil {
		if f, ok := rs.factors[userID]; ok {
			return f, nil
		}
	}
	f, err := a.readFactors(ctx, userID)
	if err != nil {
		return nil, err
	}
	if rs != nil {
		if rs.factors == nil {
			rs.factors = map[string]*Factors{}
		}
		rs.factors[userID] = f
	}
	return f, nil
}

// forgetFactors drops the request's cached copy after a change.
func (a *App) forgetFactors(ctx context.Context, userID string) {
	if rs, _ := ctx.Value(ctxRequestState).(*requestState); rs != nil {
		delete(rs.factors, userID)
	}
}

func (a *App) readFactors(ctx context.Context, userID string) (*Factors, error) {
	raw, err := a.store.GetRecord(ctx, recordFactors, userID, a.now())
	if errors.Is(err, store.ErrNotFound) {
		return &Factors{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("idp: loading factors: %w", err)
	}
	var f Factors
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("idp: decoding factors: %w", err)
	}
	return &f, nil
}

// updateFactors changes a user's factors atomically (compare-and-set in
// the store), creating the record on first use. edit must not touch the
// store: it may run more than once.
func (a *App) updateFactors(ctx context.Context, userID string, edit func(f *Factors) error) error {
	defer a.forgetFactors(ctx, userID)
	apply := func(old []byte) ([]byte, error) {
		var f Factors
		if len(old) > 0 {
			if err := json.Unmarshal(old, &f); err != nil {
				return nil, err
			}
		}
		if err := edit(&f); err != nil {
			return nil, err
		}
		f.UpdatedAt = a.now()
		return json.Marshal(&f)
	}
	err := a.store.UpdateRecord(ctx, recordFactors, userID, a.now(), apply)
	if errors.Is(err, store.ErrNotFound) {
		raw, aerr := apply(nil)
		if aerr != nil {
			return aerr
		}
		err = a.store.PutRecord(ctx, recordFactors, userID, raw, forever)
	}
	if err != nil {
		return fmt.Errorf("idp: saving factors: %w", err)
	}
	return nil
}

func (a *App) clearFactors(ctx context.Context, userID string) error {
	defer a.forgetFactors(ctx, userID)
	if a.keys != nil {
		n, err := a.keys.RemoveKeys(ctx, userID)
		if err != nil {
			return fmt.Errorf("idp: removing security keys: %w", err)
		}
		if n > 0 {
			a.audit(ctx, "webauthn_removed", userID, map[string]string{"count": strconv.Itoa(n), "reason": "factors_cleared"})
		}
	}
	if err := a.store.DeleteRecord(ctx, recordFactors, userID); err != nil {
		return fmt.Errorf("idp: clearing factors: %w", err)
	}
	return a.voidLoginCodes(ctx, userID)
}

// voidLoginCodes withdraws the login codes mailed to an address that is no
// longer the user's.
func (a *App) voidLoginCodes(ctx context.Context, userID string) error {
	// No session here: staff and the admin command clear factors too.
	if err := a.codes.Void(ctx, mfa.Subject{UserID: userID, Purpose: mfa.PurposeLogin}); err != nil {
		return fmt.Errorf("idp: voiding login codes: %w", err)
	}
	return nil
}

// trustedBrowser is one browser a user chose to trust. The cookie holds a
// random 256-bit token; the store holds only its keyed hash.
type trustedBrowser struct {
	UserID   string    `json:"user_id"`
	Label    string    `json:"label"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	Expires  time.Time `json:"expires"`
}

// TrustedBrowser is what the settings and admin pages show of one.
type TrustedBrowser struct {
	ID       string
	Label    string
	Created  time.Time
	LastUsed time.Time
}

func (a *App) keyedHash(kind, value string) string {
	m := hmac.New(sha256.New, []byte(a.cfg.Security.SecretKey.Value()))
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// trustBrowser remembers this browser for the user and sets the cookie.
func (a *App) trustBrowser(ctx context.Context, w http.ResponseWriter, r *http.Request, userID string) error {
	now := a.now()
	token := randomToken(32)
	id := a.keyedHash("trusted", token)
	tb := trustedBrowser{UserID: userID, Label: browserLabel(r.UserAgent()), Created: now, LastUsed: now,
		Expires: now.Add(a.cfg.MFA.TrustedBrowserLifetime)}
	raw, _ := json.Marshal(tb)
	// Remembering the browser is a side effect of a login that passed: if
	// the store refuses it (its audit row) at commit, the login goes on
	// without it, and the cookie is taken back before the response goes out.
	err := store.Part(ctx, func(ctx context.Context) error {
		if err := a.auditSecurity(ctx, "trusted_browser_added", userID, map[string]string{"label": tb.Label}); err != nil {
			return err
		}
		if err := a.store.PutRecord(ctx, recordTrusted, id, raw, tb.Expires); err != nil {
			return err
		}
		return a.updateTrustedIndex(ctx, userID, func(ids []string) []string { return append(ids, id) })
	}, func(err error) {
		a.log.WarnContext(ctx, "remembering the browser failed; the login goes on", "request_id", requestID(ctx), "error", err)
		dropCookie(w.Header(), trustedCookie)
	})
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: trustedCookie, Value: token, Path: "/", HttpOnly: true, Secure: a.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(a.cfg.MFA.TrustedBrowserLifetime.Seconds()),
	})
	return nil
}

// browserTrusted reports whether the request carries a trusted-browser
// cookie of this user. A cookie of another user never counts.
func (a *App) browserTrusted(ctx context.Context, r *http.Request, userID string) bool {
	c, err := r.Cookie(trustedCookie)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return false
	}
	id := a.keyedHash("trusted", c.Value)
	raw, err := a.store.GetRecord(ctx, recordTrusted, id, a.now())
	if err != nil {
		return false
	}
	var tb trustedBrowser
	if json.Unmarshal(raw, &tb) != nil || tb.UserID != userID {
		return false
	}
	if now := a.now(); now.Sub(tb.LastUsed) > time.Hour {
		tb.LastUsed = now
		if raw, err := json.Marshal(tb); err == nil {
			_ = a.store.PutRecord(ctx, recordTrusted, id, raw, tb.Expires)
		}
	}
	return true
}

func (a *App) trustedIDs(ctx context.Context, userID string) ([]string, error) {
	raw, err := a.store.GetRecord(ctx, recordTrustedIndex, userID, a.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	err = json.Unmarshal(raw, &ids)
	return ids, err
}

// updateTrustedIndex edits the per-user list of trusted-browser records.
func (a *App) updateTrustedIndex(ctx context.Context, userID string, edit func([]string) []string) error {
	apply := func(old []byte) ([]byte, error) {
		var ids []string
		if len(old) > 0 {
			if err := json.Unmarshal(old, &ids); err != nil {
				return nil, err
			}
		}
		return json.Marshal(edit(ids))
	}
	err := a.store.UpdateRecord(ctx, recordTrustedIndex, userID, a.now(), apply)
	if errors.Is(err, store.ErrNotFound) {
		raw, _ := apply(nil)
		return a.store.PutRecord(ctx, recordTrustedIndex, userID, raw, forever)
	}
	return err
}

// TrustedBrowsers lists the user's live trusted browsers, newest first.
func (a *App) TrustedBrowsers(ctx context.Context, userID string) ([]TrustedBrowser, error) {
	ids, err := a.trustedIDs(ctx, userID)
	if err != nil {
		return nil, err
	}
	var out []TrustedBrowser
	for _, id := range ids {
		raw, err := a.store.GetRecord(ctx, recordTrusted, id, a.now())
		if err != nil {
			continue // expired or revoked
		}
		var tb trustedBrowser
		if json.Unmarshal(raw, &tb) == nil && tb.UserID == userID {
			out = append(out, TrustedBrowser{ID: id[:16], Label: tb.Label, Created: tb.Created, LastUsed: tb.LastUsed})
		}
	}
	slices.Reverse(out)
	return out, nil
}

// RevokeTrustedBrowsers revokes the user's trusted browsers: all of them, or
// the one whose shown ID is only.
func (a *App) RevokeTrustedBrowsers(ctx context.Context, userID, only string) (int, error) {
	ids, err := a.trustedIDs(ctx, userID)
	if err != nil {
		return 0, err
	}
	n := 0
	var keep []string
	for _, id := range ids {
		if only != "" && !strings.HasPrefix(id, only) {
			keep = append(keep, id)
			continue
		}
		if err := a.store.DeleteRecord(ctx, recordTrusted, id); err != nil {
			return n, err
		}
		n++
	}
	err = a.updateTrustedIndex(ctx, userID, func(cur []string) []string {
		return slices.DeleteFunc(cur, func(id string) bool { return !slices.Contains(keep, id) })
	})
	return n, err
}

// browserLabel turns a User-Agent into a short label a person recognises.
func browserLabel(ua string) string {
	browser := "Browser"
	for _, b := range []struct{ marker, name string }{
		{"Edg/", "Edge"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"},
	} {
		if strings.Contains(ua, b.marker) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, s := range []struct{ marker, name string }{
		{"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Android", "Android"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, s.marker) {
			system = s.name
			break
		}
	}
	if system == "" {
		return browser
	}
	return browser + " / " + system
}

// dropCookie removes the Set-Cookie lines of the named cookie from h.
func dropCookie(h http.Header, name string) {
	var keep []string
	for _, v := range h.Values("Set-Cookie") {
		if !strings.HasPrefix(v, name+"=") {
			keep = append(keep, v)
		}
	}
	h.Del("Set-Cookie")
	for _, v := range keep {
		h.Add("Set-Cookie", v)
	}
}
