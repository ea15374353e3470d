package idp

// The login core's side of security keys and passkeys. The pages and
// ceremonies live in idp/securitykeys, which imports this package and
// plugs itself in with SetKeyFactor; what it needs of the core is exported
// here and nothing more.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mfa"
)

// MethodSecurityKey is the factor method of a security key or passkey, as
// recorded in sessions, audit events and AuthResult.FactorMethod.
const MethodSecurityKey = "webauthn"

// KeyFactor is what the core needs of the security-key plug-in.
type KeyFactor interface {
	// RemoveKeys deletes every key of the user (reset, staff clearing the
	// user's factors) and returns how many there were.
	RemoveKeys(ctx context.Context, userID string) (int, error)
	// Keys lists the user's keys for the staff console.
	Keys(ctx context.Context, userID string) ([]KeyInfo, error)
}

// KeyInfo is what staff see of one key.
type KeyInfo struct {
	Name     string
	AAGUID   string // authenticator model ("" if not reported)
	Created  time.Time
	LastUsed time.Time // zero if never
}

// SetKeyFactor plugs in the security-key factor. Call it once, before the
// handler serves requests.
func (a *App) SetKeyFactor(k KeyFactor) { a.keys = k }

// PublicURL is the configured public URL of the IdP.
func (a *App) PublicURL() *url.URL { u := *a.publicURL; return &u }

// Now is the app's clock.
func (a *App) Now() time.Time { return a.now() }

// CurrentUser is the session's signed-in account, or nil.
func (a *App) CurrentUser(ctx context.Context) *SessionUser { return a.currentUser(ctx) }

// NotifyKeyChange mails the user's registered address (if any) that a
// security key was registered (added true) or removed.
func (a *App) NotifyKeyChange(ctx context.Context, userID, keyName string, added bool) {
	f, err := a.loadFactors(ctx, userID)
	if err != nil || f.Email == nil {
		return
	}
	name := "key_removed"
	if added {
		name = "key_added"
	}
	a.notify(ctx, name, userID, f.Email.Address, mailData{KeyName: keyName})
}

// SetKeyCount records how many keys the user holds; used marks a login with
// one just now, which makes keys the user's default method.
func (a *App) SetKeyCount(ctx context.Context, userID string, count int, used bool) error {
	return a.updateFactors(ctx, userID, func(f *Factors) error {
		if count <= 0 {
			f.Keys = nil
			if f.Preferred == MethodSecurityKey {
				f.Preferred = ""
			}
			return nil
		}
		if f.Keys == nil {
			f.Keys = &KeysFactor{}
		}
		f.Keys.Count = count
		if used {
			f.Keys.LastUsed = a.now()
			f.Preferred = MethodSecurityKey
		}
		return nil
	})
}

// SpendFactorTry counts one attempt of a second factor against the
// account's shared failure budget; it returns an error wrapping
// mfa.ErrLocked once the budget is spent.
func (a *App) SpendFactorTry(ctx context.Context, userID string) error {
	return a.codes.SpendTry(ctx, a.factorSubject(ctx, userID))
}

// FactorTrySucceeded gives back the try a successful factor spent.
func (a *App) FactorTrySucceeded(ctx context.Context, userID string) error {
	return a.codes.Succeeded(ctx, a.factorSubject(ctx, userID))
}

// FactorStep is a login waiting for its second factor.
type FactorStep struct {
	TxID   string
	UserID string
	// HasEmail and HasApp say which other factors the user can switch to.
	HasEmail, HasApp bool
	// KeysOnly: the relying party asked for a phishing-resistant login.
	KeysOnly bool

	tx *LoginTx
}

// FactorStep loads the login transaction txID and checks that it is waiting
// for a second factor of the session's user; otherwise it sends the browser
// on to whatever the login needs and returns false.
func (a *App) FactorStep(w http.ResponseWriter, r *http.Request, txID string) (*FactorStep, bool) {
	tx, u, f, ok := a.factorTx(w, r, txID)
	if !ok {
		return nil, false
	}
	return &FactorStep{TxID: tx.ID, UserID: u.ID, HasEmail: f.Email != nil, HasApp: f.TOTP != nil,
		KeysOnly: tx.Request.KeysOnly, tx: tx}, true
}

// FactorPassed records a verified security key for the waiting login, with
// amr the RFC 8176 values of the key ("hwk" or "swk"; "mfa" is added), and
// moves the login on. A "trust" form value trusts the browser, as on the
// other factor pages.
func (a *App) FactorPassed(w http.ResponseWriter, r *http.Request, step *FactorStep, amr ...string) {
	ctx := r.Context()
	if err := a.recordFactor(ctx, step.tx, step.UserID, MethodSecurityKey, amr...); err != nil {
		a.serverError(w, r, err)
		return
	}
	if r.PostFormValue("trust") != "" {
		if err := a.trustBrowser(ctx, w, r, step.UserID); err != nil {
			a.log.WarnContext(ctx, "trusting browser failed", "request_id", requestID(ctx), "error", err)
		}
	}
	a.advance(w, r, step.tx)
}

// FactorFailure audits a refused factor attempt (reason is a short word
// such as "invalid", "origin" or "cloned") and returns the catalog key of
// the message to show: the lock message when err wraps mfa.ErrLocked.
func (a *App) FactorFailure(ctx context.Context, userID, reason string, err error) string {
	detail := map[string]string{"purpose": "login", "method": MethodSecurityKey}
	if err != nil && isLocked(err) {
		a.audit(ctx, "mfa_locked", userID, detail)
		a.observeFactor(MethodSecurityKey, "mfa.locked")
		return "mfa.locked"
	}
	detail["reason"] = reason
	a.audit(ctx, "mfa_failure", userID, detail)
	a.observeFactor(MethodSecurityKey, "key.failed")
	return "key.failed"
}

func isLocked(err error) bool { return errors.Is(err, mfa.ErrLocked) }

// LockedUntil formats when a lock in err ends ("" if err is no lock).
func LockedUntil(err error) string { return lockedUntil(err) }

// SettingsAccess says who may change second-factor settings and how.
type SettingsAccess struct {
	UserID string
	// Mode is "full" (signed in), "enroll" (a login that must register a
	// factor first) or "grant" (a reset that allows one registration).
	Mode string
	TxID string // the waiting login, in enroll mode

	acc settingsAccess
}

// SettingsAccess decides whether this request may change second-factor
// settings; otherwise it starts a login and returns false.
func (a *App) SettingsAccess(w http.ResponseWriter, r *http.Request, txID string) (SettingsAccess, bool) {
	acc, ok := a.settingsUser(w, r, txID)
	if !ok {
		return SettingsAccess{}, false
	}
	out := SettingsAccess{UserID: acc.UserID, Mode: acc.Mode, acc: acc}
	if acc.Tx != nil {
		out.TxID = acc.Tx.ID
	}
	return out, true
}

// KeyRegistered finishes the registration of a security key as for any
// factor: a reset grant is spent, a waiting login counts the key (amr as
// in FactorPassed), the first factor comes with recovery codes, and the
// settings page shows the result on the security-key tab.
func (a *App) KeyRegistered(w http.ResponseWriter, r *http.Request, acc SettingsAccess, amr ...string) {
	a.factorRegistered(w, r, acc.acc, MethodSecurityKey, tabKey, amr...)
}

// tabKey is the settings page's security-key tab, served by the plug-in.
const tabKey = "key"

// RenderError answers with the bilingual error page (catalog keys).
func (a *App) RenderError(w http.ResponseWriter, r *http.Request, status int, titleKey, msgKey string) {
	a.renderError(w, r, status, titleKey, msgKey)
}

// FormatWhen formats a time as every page and mail shows it.
func FormatWhen(t time.Time) string { return formatWhen(t) }

// AllowScripts lets this response's page load the app's own static scripts
// (script-src 'self'); the rest of the strict policy stays, and inline
// script stays forbidden.
func AllowScripts(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy+"; script-src 'self'")
}

// ErrKeyAccountRefused: a passkey named an account the directory does not
// have or has disabled. The caller shows the one generic refusal.
var ErrKeyAccountRefused = errors.New("idp: passkey account unknown or disabled")

// PasswordStep loads login transaction txID for a passkey-first sign-in
// and reports whether it is waiting for its first step; otherwise it sends
// the browser on to whatever the login needs and returns false.
func (a *App) PasswordStep(w http.ResponseWriter, r *http.Request, txID string) bool {
	ctx := r.Context()
	tx, err := a.loadTx(ctx, txID)
	if errors.Is(err, ErrLoginNotFound) {
		a.startLocalLogin(w, r, "/user/", AuthRequest{})
		return false
	}
	if err != nil {
		a.serverError(w, r, err)
		return false
	}
	st, err := a.pendingStep(ctx, tx)
	if err != nil {
		a.serverError(w, r, err)
		return false
	}
	if st != stepPassword {
		a.advance(w, r, tx)
		return false
	}
	return true
}

// SignInWithKey completes login transaction txID with a passkey verified
// by the caller (user verification included): the account is read live
// from the directory, and an unknown or disabled one is refused with
// ErrKeyAccountRefused (nothing is signed in). Otherwise the session is
// signed in with amr (hwk or swk) plus mfa, as both steps, and the browser
// moves on. Outages are returned as errors for the caller to show.
func (a *App) SignInWithKey(w http.ResponseWriter, r *http.Request, txID, userID string, amr ...string) error {
	ctx := r.Context()
	tx, err := a.loadTx(ctx, txID)
	if err != nil {
		return err
	}
	u, err := a.dir.Lookup(ctx, userID)
	if errors.Is(err, ldapstore.ErrUserNotFound) || (err == nil && u.Disabled) {
		return ErrKeyAccountRefused
	}
	if err != nil {
		return fmt.Errorf("idp: passkey sign-in: %w", err)
	}
	// No sign-in without its audit row: a refused write is a 503.
	if err := a.auditSecurity(ctx, "login_passkey_ok", u.ID, map[string]string{"amr": strings.Join(amr, " ")}); err != nil {
		return err
	}
	if err := a.signIn(ctx, u, amr...); err != nil {
		return err
	}
	now := a.now()
	tx.UserID, tx.PasswordAt, tx.FactorAt, tx.changed = u.ID, now, now, true
	a.observeFactor(MethodSecurityKey, "")
	a.advance(w, r, tx)
	return nil
}
