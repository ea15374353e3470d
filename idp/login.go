package idp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/campusidp/campusidp/ldapstore"
)

const rememberCookie = "idp_remember_id"

type loginForm struct {
	TxID       string
	ID         string
	Remember   bool
	ClientName string
}

func (a *App) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	txID := r.URL.Query().Get("tx")
	tx, err := a.loadTx(ctx, txID)
	if errors.Is(err, ErrLoginNotFound) {
		// A bookmarked or expired login page starts a fresh login to the
		// user's own pages instead of a dead end.
		a.startLocalLogin(w, r, "/user/", AuthRequest{})
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
	ctx := r.Context()
	form := loginForm{TxID: txID, ID: id}
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

	user, err := a.checkPassword(ctx, id, password)
	if err != nil {
		a.passwordRefused(w, r, err, func() {
			a.renderLoginForm(w, r, http.StatusUnauthorized, tx.ID, id, "login.failed")
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

var errLocked = errors.New("idp: password attempts exhausted")

// passwordRefused answers a failed checkPassword: an outage page for an
// outage, the form with the one generic message (via generic) otherwise.
func (a *App) passwordRefused(w http.ResponseWriter, r *http.Request, err error, generic func()) {
	switch {
	case errors.Is(err, errLocked), errors.Is(err, ldapstore.ErrInvalidCredentials):
		generic()
	default:
		a.serverError(w, r, err)
	}
}

// checkPassword spends one attempt from the per-ID and per-IP budgets before
// asking the directory, so parallel guesses can never overshoot a limit. An
// outage gives the attempt back; a success clears the ID's budget.
func (a *App) checkPassword(ctx context.Context, id, password string) (*ldapstore.User, error) {
	now := a.now()
	budget := a.cfg.Security.PasswordBudget
	idKey := "pw:id:" + strings.ToLower(id)
	ipKey := "pw:ip:" + clientIP(ctx)

	idCount, err := a.store.HitCounter(ctx, idKey, now, budget.PerID.Window)
	if err != nil {
		return nil, err
	}
	ipCount, err := a.store.HitCounter(ctx, ipKey, now, budget.PerIP.Window)
	if err != nil {
		return nil, err
	}
	if idCount.Count > budget.PerID.Limit || ipCount.Count > budget.PerIP.Limit {
		detail := map[string]string{"reset_at": idCount.ResetAt.UTC().Format(time.RFC3339)}
		if idCount.Count > budget.PerID.Limit {
			detail["budget"] = "id"
		} else {
			detail["budget"] = "ip"
			detail["reset_at"] = ipCount.ResetAt.UTC().Format(time.RFC3339)
		}
		// The lock itself is audited once, when the limit is first passed.
		if idCount.Count == budget.PerID.Limit+1 || ipCount.Count == budget.PerIP.Limit+1 {
			a.audit(ctx, "login_locked", id, detail)
		}
		a.audit(ctx, "login_refused_locked", id, detail)
		a.observeLogin(loginLocked)
		return nil, errLocked
	}

	user, err := a.dir.Authenticate(ctx, id, password)
	switch {
	case err == nil:
		// Earlier failures are forgiven, and the attempt just spent is
		// given back too: the budget counts failures only, and the console
		// shows it as the account's failed passwords.
		if err := a.store.ResetCounter(ctx, idKey); err != nil {
			a.log.WarnContext(ctx, "clearing password budget failed", "request_id", requestID(ctx), "error", err)
		}
		a.audit(ctx, "login_password_ok", user.ID, nil)
		a.observeLogin(loginOK)
		return user, nil
	case errors.Is(err, ldapstore.ErrInvalidCredentials):
		a.audit(ctx, "login_failed", id, map[string]string{"reason": ldapstore.FailureReason(err)})
		a.observeLogin(loginRefused)
		return nil, err
	default:
		// An outage is not the user's failure: give both attempts back.
		for _, k := range []string{idKey, ipKey} {
			if uerr := a.store.UndoCounter(ctx, k, now); uerr != nil {
				a.log.WarnContext(ctx, "returning password attempt failed", "request_id", requestID(ctx), "error", uerr)
			}
		}
		a.audit(ctx, "directory_unavailable", id, nil)
		a.observeLogin(loginUnavailable)
		if !errors.Is(err, ldapstore.ErrDirectoryUnavailable) {
			err = errors.Join(ldapstore.ErrDirectoryUnavailable, err)
		}
		return nil, err
	}
}

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
