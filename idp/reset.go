package idp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

// The reset flow ("Click here For Initial Setup or Setup Again"): the user
// proves the password again, a confirmation code goes to the registered
// address (or the helpdesk reads one out after a phone check), and on
// success the factors are cleared and a short grant allows registering a
// new address — and nothing else.

const sessReset = "reset" // *resetState

// sessResetDone marks a browser whose reset grant was spent on a new factor:
// the manual ends the reset there with "☰" → "Logout".
const sessResetDone = "reset_done"

// inResetFlow reports whether the browser holds a reset in progress, a reset
// grant, or a grant just spent, so the pages can offer Logout to end it.
func (a *App) inResetFlow(ctx context.Context) bool {
	for _, k := range []string{sessReset, sessResetGrant, sessResetDone} {
		if a.sessions.Exists(ctx, k) {
			return true
		}
	}
	return false
}

// resetState is a reset in progress: the password was checked at Started.
type resetState struct {
	UserID   string
	Started  time.Time
	CodeSent bool
	// Tx is the application's login the reset was begun from, if any; the
	// setup that ends the reset offers "Continue signing in" back to it.
	Tx string
}

// helpdeskBinding is the binding of codes issued by helpdesk staff; they are
// valid in any reset page of that user.
const helpdeskBinding = "helpdesk"

// recordResetIssuer keeps, per user, who issued the pending helpdesk code,
// so the completed reset's audit row names them (detail "issued_by").
const recordResetIssuer = "reset_code_issuer"

type resetPage struct {
	TxID        string
	ID          string
	UserID      string
	Masked      string
	Placeholder string
	Sender      string
	LockedUntil string
	// reload is the GET address of the screen (see view.GetURL), if any.
	reload string
}

func (p resetPage) lockEnd() string { return p.LockedUntil }
func (p resetPage) getURL() string  { return p.reload }

func (a *App) handleResetLogin(w http.ResponseWriter, r *http.Request) {
	a.renderPage(w, r, http.StatusOK, "reset_login", "", resetPage{TxID: resetTx(r.URL.Query().Get("tx"))})
}

// resetTx keeps a login transaction ID carried through the reset only if
// it looks like one; it is checked against the session when used.
func resetTx(id string) string {
	if len(id) > 128 {
		return ""
	}
	return id
}

func (a *App) handleResetLoginSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	txID := resetTx(r.PostFormValue("tx"))
	if id == "" {
		a.renderPage(w, r, http.StatusBadRequest, "reset_login", "login.missing_fields", resetPage{ID: id, TxID: txID})
		return
	}
	user, err := a.checkPassword(w, r, id, password)
	if err != nil {
		a.passwordRefused(w, r, err, func(status int, errKey, lockedUntil string) {
			a.renderPage(w, r, status, "reset_login", errKey, resetPage{ID: id, TxID: txID, LockedUntil: lockedUntil})
		})
		return
	}
	if err := a.sessions.RenewToken(ctx); err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := a.auditSecurity(ctx, "mfa_reset_started", user.ID, nil); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.sessionBinding(ctx)
	a.sessions.Put(ctx, sessReset, &resetState{UserID: user.ID, Started: a.now(), Tx: txID})
	http.Redirect(w, r, "/reset/init", http.StatusSeeOther)
}

// currentReset returns the reset in progress, or sends the browser back to
// the reset login when there is none or it is too old.
func (a *App) currentReset(w http.ResponseWriter, r *http.Request) *resetState {
	ctx := r.Context()
	st, _ := a.sessions.Get(ctx, sessReset).(*resetState)
	if st == nil || a.now().Sub(st.Started) > a.cfg.MFA.Email.ResetCodeLifetime {
		if st != nil {
			a.sessions.Remove(ctx, sessReset)
			a.flashError(ctx, "reset.expired")
		}
		http.Redirect(w, r, "/reset", http.StatusSeeOther)
		return nil
	}
	return st
}

func (a *App) handleResetInitPage(w http.ResponseWriter, r *http.Request) {
	if st := a.currentReset(w, r); st != nil {
		a.renderPage(w, r, http.StatusOK, "reset_init", "", resetPage{UserID: st.UserID})
	}
}

// handleResetInit mails the confirmation code to the registered address. With
// no address registered there is nothing to mail: the page then shows the
// placeholder address and the helpdesk's number.
func (a *App) handleResetInit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st := a.currentReset(w, r)
	if st == nil {
		return
	}
	if key := a.sendResetCode(ctx, st, false); key != "" {
		a.renderPage(w, r, statusFor(key), "reset_init", key, resetPage{UserID: st.UserID})
		return
	}
	http.Redirect(w, r, "/reset/code", http.StatusSeeOther)
}

// resetSubjects name the reset codes this session may use: the mailed
// ones (user-wide, like login codes, so a second reset attempt needs no
// second mail) and the one the helpdesk read out.
func (a *App) resetSubjects(ctx context.Context, userID string) (mailed, helpdesk mfa.Subject) {
	sess, dev := a.sessionBinding(ctx), a.ownerDevice(ctx, userID)
	return mfa.Subject{UserID: userID, Purpose: mfa.PurposeReset, Session: sess, Device: dev},
		mfa.Subject{UserID: userID, Purpose: mfa.PurposeReset, Binding: helpdeskBinding, Session: sess, Device: dev}
}

// sendResetCode mails the confirmation code when an address is registered.
// With resend false (the first "Initialize"), a code mailed moments ago and
// still valid is not mailed again. A user with no address (only the app, or
// nothing) gets no mail: the helpdesk issues the code.
func (a *App) sendResetCode(ctx context.Context, st *resetState, resend bool) string {
	f, err := a.loadFactors(ctx, st.UserID)
	if err != nil {
		a.log.ErrorContext(ctx, "loading factors failed", "request_id", requestID(ctx), "error", err)
		return "error.unavailable"
	}
	if f.Email != nil {
		subject, _ := a.resetSubjects(ctx, st.UserID)
		sent := time.Time{}
		if !resend {
			if sent, err = a.codes.Outstanding(ctx, subject); err != nil {
				a.log.ErrorContext(ctx, "reading codes failed", "request_id", requestID(ctx), "error", err)
				return "error.unavailable"
			}
		}
		if sent.IsZero() {
			if key := a.mailCode(ctx, subject, f.Email.Address, "reset_code", a.cfg.MFA.Email.ResetCodeLifetime); key != "" {
				return key
			}
		}
	}
	st.CodeSent = true
	a.sessions.Put(ctx, sessReset, st)
	return ""
}

func (a *App) renderResetCode(w http.ResponseWriter, r *http.Request, status int, st *resetState, errKey string, cause error) {
	ctx := r.Context()
	f, err := a.loadFactors(ctx, st.UserID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	// With no address registered the masked placeholder is shown in its
	// place, which the note below explains (as in the manual).
	placeholder := mfa.MaskAddress(a.cfg.MFA.Email.PlaceholderAddress)
	page := resetPage{
		UserID:      st.UserID,
		Masked:      placeholder,
		Placeholder: placeholder,
		Sender:      a.cfg.Mail.From,
		LockedUntil: lockedUntil(cause),
		reload:      "/reset/code",
	}
	if f.Email != nil {
		page.Masked = mfa.MaskAddress(f.Email.Address)
		page.Placeholder = ""
	}
	a.renderPage(w, r, status, "reset_code", errKey, page)
}

func (a *App) handleResetCodePage(w http.ResponseWriter, r *http.Request) {
	st := a.currentReset(w, r)
	if st == nil {
		return
	}
	if !st.CodeSent {
		http.Redirect(w, r, "/reset/init", http.StatusSeeOther)
		return
	}
	a.renderResetCode(w, r, http.StatusOK, st, "", nil)
}

func (a *App) handleResetResend(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st := a.currentReset(w, r)
	if st == nil {
		return
	}
	if key := a.sendResetCode(ctx, st, true); key != "" {
		a.renderResetCode(w, r, statusFor(key), st, key, nil)
		return
	}
	a.flashNotice(ctx, "reset.resent")
	http.Redirect(w, r, "/reset/code", http.StatusSeeOther)
}

// handleResetConfirm checks the confirmation code (mailed, or issued by the
// helpdesk) and, on success, clears the factors, revokes trusted browsers,
// ends the user's other sessions, mails a notice and grants the setup.
func (a *App) handleResetConfirm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st := a.currentReset(w, r)
	if st == nil {
		return
	}
	mailed, helpdesk := a.resetSubjects(ctx, st.UserID)
	used, err := a.codes.VerifyAny(ctx, r.PostFormValue("code"), mailed, helpdesk)
	if err != nil {
		key := a.codeFailure(ctx, st.UserID, "reset", err)
		a.renderResetCode(w, r, statusFor(key), st, key, err)
		return
	}
	f, err := a.loadFactors(ctx, st.UserID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	detail := map[string]string{"via": "mail"}
	if used.Binding == helpdeskBinding {
		detail["via"] = "helpdesk"
		// The staff member who read the code out answers for this reset too.
		switch issuer, err := a.store.GetRecord(ctx, recordResetIssuer, st.UserID, a.now()); {
		case err == nil:
			detail["issued_by"] = string(issuer)
		case !errors.Is(err, store.ErrNotFound):
			a.log.WarnContext(ctx, "reading the reset code's issuer failed", "request_id", requestID(ctx), "error", err)
		}
	}
	// Recorded before the factors go: a reset never happens unrecorded.
	if err := a.auditSecurity(ctx, "mfa_reset", st.UserID, detail); err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := a.resetFactors(ctx, st.UserID); err != nil {
		a.serverError(w, r, err)
		return
	}
	if used.Binding == helpdeskBinding {
		if err := a.store.DeleteRecord(ctx, recordResetIssuer, st.UserID); err != nil {
			a.log.WarnContext(ctx, "forgetting the reset code's issuer failed", "request_id", requestID(ctx), "error", err)
		}
	}
	// The notice goes where there is an address; an app-only user has none.
	if f.Email != nil {
		a.notify(ctx, "reset_done", st.UserID, f.Email.Address, mailData{})
	}

	// This browser keeps only the grant: no login, no old factor state.
	if err := a.sessions.RenewToken(ctx); err != nil {
		a.serverError(w, r, err)
		return
	}
	for _, k := range []string{sessReset, sessUser, sessAuth, sessSetup} {
		a.sessions.Remove(ctx, k)
	}
	a.sessions.Put(ctx, sessResetGrant, &resetGrant{UserID: st.UserID, Until: a.now().Add(a.cfg.MFA.Email.ResetGrantLifetime), Tx: st.Tx})
	a.flashNotice(ctx, "otp.reset_only")
	http.Redirect(w, r, "/user/otp", http.StatusSeeOther)
}

// resetFactors clears a user's second factors, revokes their trusted
// browsers and ends all their sessions (the current request's session is
// handled by the caller).
func (a *App) resetFactors(ctx context.Context, userID string) error {
	if err := a.clearFactors(ctx, userID); err != nil {
		return err
	}
	if _, err := a.RevokeTrustedBrowsers(ctx, userID, ""); err != nil {
		return err
	}
	if _, err := a.store.DeleteUserSessions(ctx, userID, hashSessionToken(a.sessions.Token(ctx))); err != nil {
		return err
	}
	_, err := a.revokeGrants(ctx, userID)
	return err
}

// IssueResetCode creates a reset confirmation code for userID on behalf of
// helpdesk staff (actor), after they verified the caller by phone. The code
// is shown once to the staff member and works only in that user's reset page.
func (a *App) IssueResetCode(ctx context.Context, actor, userID string) (string, error) {
	if _, err := a.dir.Lookup(ctx, userID); err != nil {
		return "", err
	}
	if err := a.auditRequired(ctx, "helpdesk_reset_code_issued", actor, userID, nil); err != nil {
		return "", err
	}
	code, err := a.codes.IssueFor(ctx, mfa.Subject{UserID: userID, Purpose: mfa.PurposeReset, Binding: helpdeskBinding})
	if err != nil {
		return "", err
	}
	// A new code replaces the pending one, so its issuer replaces the
	// pending one's; the record outlives the code as the code's does.
	if err := a.store.PutRecord(ctx, recordResetIssuer, userID, []byte(actor),
		a.now().Add(a.cfg.MFA.Email.ResetCodeLifetime+time.Hour)); err != nil {
		return "", err
	}
	return code, nil
}
