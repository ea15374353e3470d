package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/campusidp/campusidp/store"
)

// Errors a protocol front-end may meet when finishing a login.
var (
	// ErrLoginNotFound: the transaction is unknown, expired, or belongs to
	// another browser.
	ErrLoginNotFound = errors.New("idp: login transaction not found")
	// ErrLoginIncomplete: a required step (password, second factor) is not done.
	ErrLoginIncomplete = errors.New("idp: login transaction incomplete")
)

const recordLoginTx = "login_tx"

// AuthRequest is what a front-end asks of the login core.
type AuthRequest struct {
	ClientID   string
	ClientName string
	// ReturnTo is the local path the browser is sent to once every step is
	// done; the front-end then calls FinishLogin.
	ReturnTo string
	// RequireMFA demands a second factor in this session.
	RequireMFA bool
	// MaxAge, when set, demands a password check no older than this.
	MaxAge *time.Duration
	// ForceLogin demands a fresh password check in this transaction.
	ForceLogin bool
	// KeysOnly demands a phishing-resistant factor: a security key or
	// passkey; no other factor (nor a trusted browser) satisfies it.
	KeysOnly bool `json:",omitempty"`
	// ReturnInPlace: the form post that completes the last step is answered
	// by ReturnTo's handler within the same request (seen as a GET of
	// ReturnTo), instead of a redirect the browser follows with another
	// request: one round trip and one store transaction less per login.
	// For front-ends whose ReturnTo answers a finished login with a page
	// (a continue page, a consent page, a form post), never a redirect.
	ReturnInPlace bool `json:",omitempty"`
}

// LoginTx is a login transaction: one request's progress through the steps.
// Only the code that verified a step marks it done.
type LoginTx struct {
	ID      string      `json:"id"`
	Binding string      `json:"binding"`
	Request AuthRequest `json:"request"`
	Created time.Time   `json:"created"`
	Expires time.Time   `json:"expires"`

	UserID     string    `json:"user_id,omitempty"`
	PasswordAt time.Time `json:"password_at,omitzero"`
	FactorAt   time.Time `json:"factor_at,omitzero"`
	CodeSentAt time.Time `json:"code_sent_at,omitzero"`

	// changed marks steps recorded in this request and not yet saved;
	// advance saves them once, before the redirect.
	changed bool
}

// AuthResult is what a finished login tells the front-end.
type AuthResult struct {
	User     SessionUser
	AuthTime time.Time // the last password check
	AMR      []string  // RFC 8176 values: "pwd", "otp", "mfa"
	MFA      bool      // a second factor was verified in this session
	// FactorMethod is how: "email_otp", "totp", "recovery_code" or
	// "trusted_browser" ("" without MFA).
	FactorMethod string
}

// BeginLogin creates a login transaction bound to the browser's session and
// returns its ID. The browser is then sent to LoginURL(id).
func (a *App) BeginLogin(ctx context.Context, req AuthRequest) (string, error) {
	if req.ReturnTo == "" || !isLocalPath(req.ReturnTo) {
		return "", fmt.Errorf("idp: AuthRequest.ReturnTo must be a local path, got %q", req.ReturnTo)
	}
	binding := a.sessionBinding(ctx)
	// The login form needs a CSRF token: made now, with the binding, so the
	// session is written once here and GET /login writes nothing.
	a.csrfToken(ctx)
	now := a.now()
	tx := &LoginTx{
		ID:      randomToken(24),
		Binding: binding,
		Request: req,
		Created: now,
		Expires: now.Add(a.cfg.Security.LoginTxLifetime),
	}
	if err := a.saveTx(ctx, tx); err != nil {
		return "", err
	}
	return tx.ID, nil
}

// LoginURL is where the browser goes to work through a transaction's steps.
func LoginURL(txID string) string { return "/login?tx=" + url.QueryEscape(txID) }

// Satisfied reports whether the browser's current session already meets the
// request, so a front-end can answer prompt=none or IsPassive without a page.
func (a *App) Satisfied(ctx context.Context, req AuthRequest) (bool, error) {
	st, err := a.pendingStep(ctx, &LoginTx{Request: req})
	return st == stepDone, err
}

// FinishLogin hands the authenticated result to the front-end and ends the
// transaction. It refuses a transaction whose steps are not all done, so a
// password-only session can never obtain a code or an assertion.
func (a *App) FinishLogin(ctx context.Context, txID string) (*AuthResult, error) {
	tx, err := a.loadTx(ctx, txID)
	if err != nil {
		return nil, err
	}
	pending, err := a.pendingStep(ctx, tx)
	if err != nil {
		return nil, err
	}
	if pending != stepDone {
		return nil, ErrLoginIncomplete
	}
	if err := a.store.DeleteRecord(ctx, recordLoginTx, tx.ID); err != nil {
		return nil, fmt.Errorf("idp: ending login transaction: %w", err)
	}
	u := a.currentUser(ctx)
	st := a.authState(ctx)
	return &AuthResult{
		User:     *u,
		AuthTime: st.AuthTime,
		AMR:      append([]string(nil), st.AMR...),
		MFA:      !st.FactorAt.IsZero(),

		FactorMethod: st.FactorMethod,
	}, nil
}

// CurrentLogin returns what the browser's session proves without a
// transaction (for prompt=none and IsPassive answers), or nil when nobody is
// signed in or a required step is missing.
func (a *App) CurrentLogin(ctx context.Context, req AuthRequest) (*AuthResult, error) {
	pending, err := a.pendingStep(ctx, &LoginTx{Request: req})
	if err != nil || pending != stepDone {
		return nil, err
	}
	u := a.currentUser(ctx)
	st := a.authState(ctx)
	return &AuthResult{User: *u, AuthTime: st.AuthTime, AMR: append([]string(nil), st.AMR...),
		MFA: !st.FactorAt.IsZero(), FactorMethod: st.FactorMethod}, nil
}

// EndSession signs the browser out (RP-initiated logout, SAML SLO).
func (a *App) EndSession(ctx context.Context) error {
	if u := a.currentUser(ctx); u != nil {
		a.audit(ctx, "logout", u.ID, map[string]string{"via": "protocol"})
	}
	return a.sessions.Destroy(ctx)
}

// RedirectOut sends the browser to another site (a relying party). It
// answers with a small page that moves on by itself (meta refresh, no
// script) instead of a redirect: browsers apply the login form's
// form-action 'self' to every redirect that follows a form submission.
func (a *App) RedirectOut(w http.ResponseWriter, r *http.Request, target string) {
	a.renderPage(w, r, http.StatusOK, "continue", "", continuePage{URL: target})
}

type continuePage struct{ URL string }

func (a *App) saveTx(ctx context.Context, tx *LoginTx) error {
	raw, err := json.Marshal(tx)
	if err != nil {
		return err
	}
	if err := a.store.PutRecord(ctx, recordLoginTx, tx.ID, raw, tx.Expires); err != nil {
		return fmt.Errorf("idp: saving login transaction: %w", err)
	}
	tx.changed = false
	return nil
}

// loadTx returns the transaction only to the browser session it is bound to.
func (a *App) loadTx(ctx context.Context, id string) (*LoginTx, error) {
	if id == "" || len(id) > 128 {
		return nil, ErrLoginNotFound
	}
	raw, err := a.store.GetRecord(ctx, recordLoginTx, id, a.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrLoginNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("idp: loading login transaction: %w", err)
	}
	var tx LoginTx
	if err := json.Unmarshal(raw, &tx); err != nil {
		return nil, fmt.Errorf("idp: decoding login transaction: %w", err)
	}
	binding := a.sessions.GetString(ctx, sessBinding)
	if binding == "" || binding != tx.Binding {
		return nil, ErrLoginNotFound
	}
	return &tx, nil
}

// isLocalPath accepts only same-origin paths, so a ReturnTo can never become
// an open redirect.
func isLocalPath(p string) bool {
	if len(p) == 0 || p[0] != '/' || (len(p) > 1 && (p[1] == '/' || p[1] == '\\')) {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == ""
}

// startLocalLogin begins a transaction for the IdP's own pages (e.g. /user/).
func (a *App) startLocalLogin(w http.ResponseWriter, r *http.Request, returnTo string, req AuthRequest) {
	req.ReturnTo = returnTo
	id, err := a.BeginLogin(r.Context(), req)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, LoginURL(id), http.StatusSeeOther)
}
