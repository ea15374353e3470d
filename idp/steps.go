package idp

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/campusidp/campusidp/config"
)

// step is what a login transaction still needs from the browser's session.
type step int

const (
	stepDone     step = iota
	stepPassword      // a password check (none yet, another user, prompt=login, max_age)
	stepFactor        // the user's registered second factor (or a trusted browser)
	stepEnroll        // the user has no factor but must register one first
)

// pendingStep decides what the transaction still needs. Only the handlers
// that verified a password or a factor ever record one as done.
func (a *App) pendingStep(ctx context.Context, tx *LoginTx) (step, error) {
	u := a.currentUser(ctx)
	st := a.authState(ctx)
	switch {
	case u == nil || st.AuthTime.IsZero():
		return stepPassword, nil
	case tx.UserID != "" && tx.UserID != u.ID:
		return stepPassword, nil
	case tx.Request.ForceLogin && tx.PasswordAt.IsZero():
		return stepPassword, nil
	case tx.Request.MaxAge != nil && tx.PasswordAt.IsZero() && a.now().Sub(st.AuthTime) > *tx.Request.MaxAge:
		return stepPassword, nil
	}
	factors, err := a.loadFactors(ctx, u.ID)
	if err != nil {
		return stepPassword, err
	}
	needFactor := factors.Enrolled() || tx.Request.RequireMFA || a.cfg.MFA.Enrollment == config.EnrollmentRequired
	if !needFactor {
		return stepDone, nil
	}
	factorDone := !st.FactorAt.IsZero()
	if tx.Request.ForceLogin && tx.FactorAt.IsZero() {
		factorDone = false
	}
	if tx.Request.KeysOnly && st.FactorMethod != MethodSecurityKey {
		factorDone = false
	}
	switch {
	case factorDone:
		return stepDone, nil
	case factors.Enrolled():
		return stepFactor, nil
	default:
		return stepEnroll, nil
	}
}

// advance moves the browser to the transaction's next step. On the way into
// the factor step, a trusted browser of this user counts as the factor, and
// otherwise a code is mailed at once so the user finds it waiting.
func (a *App) advance(w http.ResponseWriter, r *http.Request, tx *LoginTx) {
	ctx := r.Context()
	st, err := a.pendingStep(ctx, tx)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if st == stepFactor {
		u := a.currentUser(ctx)
		if !tx.Request.ForceLogin && !tx.Request.KeysOnly && a.browserTrusted(ctx, r, u.ID) {
			if err := a.recordFactor(ctx, tx, u.ID, methodTrustedBrowser); err != nil {
				a.serverError(w, r, err)
				return
			}
			a.advance(w, r, tx)
			return
		}
		f, err := a.loadFactors(ctx, u.ID)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		// The mailed code is sent at once when email is the user's method,
		// so it is waiting when the page opens, unless a code mailed for an
		// earlier login is still valid: then the page says so and nothing is
		// sent (a reload or a new login must not mail again).
		if f.DefaultMethod() == methodEmail && !tx.Request.KeysOnly {
			sent, err := a.codes.Outstanding(ctx, a.loginSubject(ctx, u.ID))
			switch {
			case err != nil:
				a.serverError(w, r, err)
				return
			case !sent.IsZero():
				if !sent.Equal(tx.CodeSentAt) {
					tx.CodeSentAt = sent
					tx.changed = true
				}
			default:
				// Within the cooldown (the last code was used or voided)
				// the page offers Send; that is no error worth showing.
				switch errKey := a.sendLoginCode(ctx, tx); errKey {
				case "":
				case "mfa.cooldown":
					if !tx.CodeSentAt.IsZero() {
						tx.CodeSentAt = time.Time{} // that code is gone
						tx.changed = true
					}
				default:
					a.flashError(ctx, errKey)
				}
			}
		}
	}
	// One write for every step this request recorded.
	if tx.changed {
		if err := a.saveTx(ctx, tx); err != nil {
			a.serverError(w, r, err)
			return
		}
	}
	if st == stepDone && tx.Request.ReturnInPlace && r.Method == http.MethodPost {
		a.serveInPlace(w, r, tx.Request.ReturnTo)
		return
	}
	http.Redirect(w, r, a.stepURL(st, tx), http.StatusSeeOther)
}

// serveInPlace answers the form post that finished a login with the
// handler of the front-end's ReturnTo, seen as a GET of it in this request's
// context: the same session and the same unit of work, so the login's last
// step and the front-end's answer are committed together.
func (a *App) serveInPlace(w http.ResponseWriter, r *http.Request, target string) {
	u, err := url.Parse(target)
	if err != nil || !isLocalPath(target) {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	get := r.Clone(r.Context())
	get.Method = http.MethodGet
	get.URL = r.URL.ResolveReference(u)
	get.RequestURI = u.RequestURI()
	get.Body, get.ContentLength = http.NoBody, 0
	get.Form, get.PostForm = nil, nil
	get.Header.Del("Content-Type")
	a.mux.ServeHTTP(w, get)
}

func (a *App) stepURL(st step, tx *LoginTx) string {
	q := "?tx=" + url.QueryEscape(tx.ID)
	switch st {
	case stepPassword:
		return "/login" + q
	case stepFactor:
		return "/mfa" + q
	case stepEnroll:
		return "/user/otp" + q
	default:
		return tx.Request.ReturnTo
	}
}

// nextURL is where the browser goes for the transaction's pending step.
func (a *App) nextURL(ctx context.Context, tx *LoginTx) (string, error) {
	st, err := a.pendingStep(ctx, tx)
	if err != nil {
		return "", err
	}
	return a.stepURL(st, tx), nil
}

// recordFactor marks the second factor done in the session and transaction.
// The session token is renewed: this is a privilege change. amr, when
// given, names the factor (RFC 8176) instead of "otp".
func (a *App) recordFactor(ctx context.Context, tx *LoginTx, userID, method string, amr ...string) error {
	if err := a.renewAndBind(ctx, userID); err != nil {
		return err
	}
	now := a.now()
	st := a.authState(ctx)
	next := &AuthState{AuthTime: st.AuthTime, FactorAt: now, FactorMethod: method}
	// A trusted browser proves an earlier factor, not one done now.
	factorAMR := []string{"mfa"}
	switch {
	case len(amr) > 0:
		factorAMR = append(append([]string(nil), amr...), "mfa")
	case method != methodTrustedBrowser:
		factorAMR = []string{"otp", "mfa"}
	}
	next.AMR = mergeAMR(st.AMR, factorAMR)
	if err := a.auditSecurity(ctx, "mfa_success", userID, map[string]string{"method": method}); err != nil {
		return err // the factor does not count without its audit row
	}
	a.sessions.Put(ctx, sessAuth, next)
	a.observeFactor(method, "")
	if method != methodTrustedBrowser {
		a.rememberOwnerDevice(ctx, userID)
	}
	if tx != nil {
		tx.FactorAt = now
		tx.changed = true // saved by advance, or by the caller
	}
	return nil
}

const sessFlash = "flash"

// flashError and flashNotice keep a message key for the next page this
// session renders (after a redirect).
func (a *App) flashError(ctx context.Context, key string) {
	a.sessions.Put(ctx, sessFlash, "error:"+key)
}
func (a *App) flashNotice(ctx context.Context, key string) {
	a.sessions.Put(ctx, sessFlash, "notice:"+key)
}
