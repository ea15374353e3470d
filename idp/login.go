package idp

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/metrics"
)

const rememberCookie = "idp_remember_id"

type loginForm struct {
	TxID        string
	ID          string
	Remember    bool
	ClientName  string
	LockedUntil string
	// Passkey offers "Sign in with a passkey" (mfa.webauthn.passwordless).
	Passkey bool
}

func (f loginForm) lockEnd() string { return f.LockedUntil }

func (a *App) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	txID := r.URL.Query().Get("tx")
	tx, err := a.loadTx(ctx, txID)
	if errors.Is(err, ErrLoginNotFound) {
		// A browser that did not send back the session cookie set with
		// the last redirect here refuses cookies: starting yet another
		// login would loop between /login and /login?tx= forever.
		_, noCookie := r.Cookie(a.sessions.Cookie.Name)
		if noCookie != nil && r.URL.Query().Get(cookieCheck) != "" {
			a.renderError(w, r, http.StatusBadRequest, "error.cookies_title", "error.cookies")
			return
		}
		// A bookmarked, expired or forwarded login page starts a fresh
		// login to the user's own pages instead of a dead end.
		id, err := a.BeginLogin(ctx, AuthRequest{ReturnTo: "/user/"})
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		target := LoginURL(id)
		if noCookie != nil {
			target += "&" + cookieCheck + "=1"
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	st, err := a.pendingStep(ctx, tx)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if st != stepPassword {
		a.advance(w, r, tx)
		return
	}
	id := ""
	if c, err := r.Cookie(rememberCookie); err == nil {
		id = c.Value
	}
	a.renderLoginForm(w, r, http.StatusOK, tx.ID, id, "")
}

func (a *App) renderLoginForm(w http.ResponseWriter, r *http.Request, status int, txID, id, errKey string) {
	a.renderLoginFormLocked(w, r, status, txID, id, errKey, "")
}

func (a *App) renderLoginFormLocked(w http.ResponseWriter, r *http.Request, status int, txID, id, errKey, lockedUntil string) {
	ctx := r.Context()
	form := loginForm{TxID: txID, ID: id, LockedUntil: lockedUntil, Passkey: a.keys != nil && a.cfg.MFA.WebAuthn.Passwordless}
	if c, err := r.Cookie(rememberCookie); err == nil && c.Value != "" {
		form.Remember = true
	}
	if tx, err := a.loadTx(ctx, txID); err == nil {
		form.ClientName = tx.Request.ClientName
	}
	a.renderPage(w, r, status, "login", errKey, form)
}

func (a *App) handleLoginSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	txID := r.PostFormValue("tx")
	id := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password") // exactly as typed: never trimmed
	remember := r.PostFormValue("remember") != ""

	tx, err := a.loadTx(ctx, txID)
	if errors.Is(err, ErrLoginNotFound) {
		id, err := a.BeginLogin(ctx, AuthRequest{ReturnTo: "/user/"})
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		a.renderLoginForm(w, r, http.StatusBadRequest, id, strings.TrimSpace(r.PostFormValue("username")), "login.expired")
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	// An empty password goes on to the directory client, which refuses it
	// before any bind, so it meets the same generic answer as a wrong one.
	if id == "" {
		a.renderLoginForm(w, r, http.StatusBadRequest, tx.ID, id, "login.missing_fields")
		return
	}

	user, err := a.checkPassword(w, r, id, password)
	if err != nil {
		a.passwordRefused(w, r, err, func(status int, errKey, lockedUntil string) {
			a.renderLoginFormLocked(w, r, status, tx.ID, id, errKey, lockedUntil)
		})
		return
	}

	if err := a.signIn(ctx, user); err != nil {
		a.serverError(w, r, err)
		return
	}
	tx.UserID = user.ID
	tx.PasswordAt = a.now()
	tx.changed = true // saved by advance
	a.setRememberCookie(w, id, remember)
	a.advance(w, r, tx)
}

// cookieCheck marks a redirect to a fresh login made for a request that
// carried no session cookie.
const cookieCheck = "cookie_check"

var errLocked = errors.New("idp: password attempts exhausted")

// passwordLockedError is errLocked with the end of the lock.
type passwordLockedError struct{ until time.Time }

func (e *passwordLockedError) Error() string { return errLocked.Error() }
func (e *passwordLockedError) Unwrap() error { return errLocked }

// passwordRefused answers a failed checkPassword: an outage page for an
// outage; otherwise the form (via show) with the one generic message, or,
// when the budget is spent, "too many attempts" and when to try again, so
// a user who has the right password is not sent to "Forgot your password?".
// Every ID has a budget, known or not, so this tells nothing about accounts.
func (a *App) passwordRefused(w http.ResponseWriter, r *http.Request, err error, show func(status int, errKey, lockedUntil string)) {
	var locked *passwordLockedError
	switch {
	case errors.As(err, &locked):
		show(http.StatusTooManyRequests, "login.locked", a.retryWhen(locked.until))
	case errors.Is(err, errLocked), errors.Is(err, ldapstore.ErrInvalidCredentials):
		show(http.StatusUnauthorized, "login.failed", "")
	default:
		a.serverError(w, r, err)
	}
}

// retryWhen says when a lock ends, as a time and in minutes from now.
func (a *App) retryWhen(until time.Time) string {
	n := int(math.Ceil(until.Sub(a.now()).Minutes()))
	if n < 1 {
		n = 1
	}
	return fmt.Sprintf("%s (約%d分後 / in about %d minutes)", formatWhen(until), n, n)
}

// checkPassword canonicalises the typed ID, spends one attempt from the
// password budgets (see spendPasswordAttempt) and asks the directory. An
// outage gives the attempts back; a success clears the client's budget and
// gives the browser a device cookie for the ID.
func (a *App) checkPassword(w http.ResponseWriter, r *http.Request, typed, password string) (*ldapstore.User, error) {
	ctx := r.Context()
	now := a.now()
	at := &passwordAttempt{canonical: CanonicalID(typed)}
	if !a.validCanonicalID(at.canonical) {
		// Never sent to the directory; only the address's throttle counts
		// it, so junk IDs cannot be used to spend anyone's budget.
		c, err := a.store.HitCounter(ctx, passwordIPKey(clientIP(ctx)), now, a.cfg.Security.PasswordBudget.PerIP.Window)
		if err != nil {
			return nil, err
		}
		if c.Count == a.cfg.Security.PasswordBudget.PerIP.Limit+1 {
			a.metrics.LimitTripped(metrics.LimitPassword, metrics.KeyIP)
		}
		// Audited as typed: such an ID names no account to group under.
		if err := a.auditSecurity(ctx, "login_failed", strings.TrimSpace(typed), map[string]string{"reason": ldapstore.ReasonInvalidID}); err != nil {
			return nil, err
		}
		a.observeLogin(loginRefused)
		return nil, invalidID
	}
	at.device = a.deviceNonce(r, at.canonical)
	refusedBy, resetAt, err := a.spendPasswordAttempt(ctx, at)
	if err != nil {
		return nil, err
	}
	if refusedBy != "" {
		a.observeLogin(loginLocked)
		return nil, &passwordLockedError{until: resetAt}
	}

	user, err := a.dir.Authenticate(ctx, at.canonical, password)
	switch {
	case err == nil:
		// Earlier failures are forgiven, this client's and the account's
		// (the per-ID ceiling counts consecutive failures, as NIST puts it,
		// and the console shows it as the account's failed passwords); the
		// address gets its attempt back, for it counts failures only.
		if err := a.store.ResetCounter(ctx, at.clientKey); err != nil {
			a.log.WarnContext(ctx, "clearing password budget failed", "request_id", requestID(ctx), "error", err)
		}
		if err := a.store.ResetCounter(ctx, passwordIDKey(at.canonical)); err != nil {
			a.log.WarnContext(ctx, "clearing password budget failed", "request_id", requestID(ctx), "error", err)
		}
		if err := a.store.UndoCounter(ctx, passwordIPKey(clientIP(ctx)), now); err != nil {
			a.log.WarnContext(ctx, "clearing password budget failed", "request_id", requestID(ctx), "error", err)
		}
		if err := a.auditSecurity(ctx, "login_password_ok", user.ID, nil); err != nil {
			return nil, err // no sign-in without its audit row: 503
		}
		a.setDeviceCookie(w, at.canonical, at.device)
		a.observeLogin(loginOK)
		return user, nil
	case errors.Is(err, ldapstore.ErrInvalidCredentials):
		if aerr := a.auditSecurity(ctx, "login_failed", at.canonical, map[string]string{"reason": ldapstore.FailureReason(err)}); aerr != nil {
			return nil, aerr
		}
		a.observeLogin(loginRefused)
		return nil, err
	default:
		// An outage is not the user's failure: give the attempts back.
		for _, k := range at.keys {
			if uerr := a.store.UndoCounter(ctx, k, now); uerr != nil {
				a.log.WarnContext(ctx, "returning password attempt failed", "request_id", requestID(ctx), "error", uerr)
			}
		}
		a.audit(ctx, "directory_unavailable", at.canonical, nil)
		a.observeLogin(loginUnavailable)
		if !errors.Is(err, ldapstore.ErrDirectoryUnavailable) {
			err = errors.Join(ldapstore.ErrDirectoryUnavailable, err)
		}
		return nil, err
	}
}

// invalidID answers an ID outside ldap.id_pattern like any wrong password.
var invalidID = fmt.Errorf("%w: ID outside ldap.id_pattern", ldapstore.ErrInvalidCredentials)

func (a *App) setRememberCookie(w http.ResponseWriter, id string, remember bool) {
	c := &http.Cookie{
		Name:     rememberCookie,
		Path:     "/login",
		HttpOnly: true,
		Secure:   a.secure,
		SameSite: http.SameSiteLaxMode,
	}
	if remember && len(id) <= 256 {
		c.Value = id
		c.MaxAge = int(a.cfg.Security.RememberIDLifetime.Seconds())
	} else {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}
