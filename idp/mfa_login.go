package idp

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/campusidp/campusidp/mfa"
)

type mfaPage struct {
	TxID        string
	UserID      string
	Masked      string
	Sent        bool
	LockedUntil string
}

// factorTx loads the transaction of a factor-step request and checks that
// the factor step is really what it needs; otherwise it sends the browser on.
func (a *App) factorTx(w http.ResponseWriter, r *http.Request, txID string) (*LoginTx, *SessionUser, *Factors, bool) {
	ctx := r.Context()
	tx, err := a.loadTx(ctx, txID)
	if errors.Is(err, ErrLoginNotFound) {
		a.startLocalLogin(w, r, "/user/", AuthRequest{})
		return nil, nil, nil, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return nil, nil, nil, false
	}
	st, err := a.pendingStep(ctx, tx)
	if err != nil {
		a.serverError(w, r, err)
		return nil, nil, nil, false
	}
	if st != stepFactor {
		a.advance(w, r, tx)
		return nil, nil, nil, false
	}
	u := a.currentUser(ctx)
	f, err := a.loadFactors(ctx, u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return nil, nil, nil, false
	}
	return tx, u, f, true
}

func (a *App) handleMFAPage(w http.ResponseWriter, r *http.Request) {
	tx, u, f, ok := a.factorTx(w, r, r.URL.Query().Get("tx"))
	if !ok {
		return
	}
	a.renderMFA(w, r, http.StatusOK, tx, u, f, "", nil)
}

func (a *App) renderMFA(w http.ResponseWriter, r *http.Request, status int, tx *LoginTx, u *SessionUser, f *Factors, errKey string, cause error) {
	page := mfaPage{TxID: tx.ID, UserID: u.ID, Masked: mfa.MaskAddress(f.Email.Address), Sent: !tx.CodeSentAt.IsZero()}
	page.LockedUntil = lockedUntil(cause)
	a.renderPage(w, r, status, "mfa_email", errKey, page)
}

func (a *App) handleMFASend(w http.ResponseWriter, r *http.Request) {
	tx, u, f, ok := a.factorTx(w, r, r.PostFormValue("tx"))
	if !ok {
		return
	}
	if errKey := a.sendLoginCode(r.Context(), tx); errKey != "" {
		a.renderMFA(w, r, statusFor(errKey), tx, u, f, errKey, nil)
		return
	}
	a.flashNotice(r.Context(), "mfa.resent")
	http.Redirect(w, r, a.stepURL(stepFactor, tx), http.StatusSeeOther)
}

// sendLoginCode mails a login code to the registered address. It returns
// the catalog key of the message to show when that was not possible.
func (a *App) sendLoginCode(ctx context.Context, tx *LoginTx) string {
	u := a.currentUser(ctx)
	f, err := a.loadFactors(ctx, u.ID)
	if err != nil || !f.Enrolled() {
		return "error.internal"
	}
	subject := mfa.Subject{UserID: u.ID, Purpose: mfa.PurposeLogin, Binding: tx.ID}
	if key := a.mailCode(ctx, subject, f.Email.Address, "otp", a.cfg.MFA.Email.CodeLifetime); key != "" {
		return key
	}
	tx.CodeSentAt = a.now()
	if err := a.saveTx(ctx, tx); err != nil {
		return "error.internal"
	}
	return ""
}

func (a *App) handleMFAVerify(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tx, u, f, ok := a.factorTx(w, r, r.PostFormValue("tx"))
	if !ok {
		return
	}
	code := r.PostFormValue("code")
	if mfa.NormalizeCode(code) == "" {
		a.renderMFA(w, r, http.StatusBadRequest, tx, u, f, "mfa.code_missing", nil)
		return
	}
	err := a.codes.Verify(ctx, mfa.Subject{UserID: u.ID, Purpose: mfa.PurposeLogin, Binding: tx.ID}, code)
	if err != nil {
		key := a.codeFailure(ctx, u.ID, "login", err)
		a.renderMFA(w, r, statusFor(key), tx, u, f, key, err)
		return
	}
	f.Email.LastUsed = a.now()
	if err := a.saveFactors(ctx, u.ID, f); err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := a.recordFactor(ctx, tx, u.ID, "email_otp"); err != nil {
		a.serverError(w, r, err)
		return
	}
	if r.PostFormValue("trust") != "" {
		if err := a.trustBrowser(ctx, w, r, u.ID); err != nil {
			a.log.WarnContext(ctx, "trusting browser failed", "request_id", requestID(ctx), "error", err)
		}
	}
	a.advance(w, r, tx)
}

// codeFailure audits a refused code and returns the message to show.
func (a *App) codeFailure(ctx context.Context, userID, purpose string, err error) string {
	detail := map[string]string{"purpose": purpose}
	switch {
	case errors.Is(err, mfa.ErrLocked):
		a.audit(ctx, "mfa_locked", userID, detail)
		return "mfa.locked"
	case errors.Is(err, mfa.ErrCodeExpired):
		detail["reason"] = "expired"
		a.audit(ctx, "mfa_failure", userID, detail)
		if purpose == "reset" {
			return "reset.code_expired"
		}
		return "mfa.code_expired"
	case errors.Is(err, mfa.ErrCodeInvalid):
		detail["reason"] = "invalid"
		a.audit(ctx, "mfa_failure", userID, detail)
		if purpose == "reset" {
			return "reset.code_invalid"
		}
		return "mfa.code_invalid"
	default:
		a.log.ErrorContext(ctx, "verifying code failed", "request_id", requestID(ctx), "error", err)
		return "error.unavailable"
	}
}

// mailCode issues a code for s and mails it. If the mail cannot be sent the
// code is withdrawn (the cooldown and send count given back), so an outage
// costs the user nothing.
func (a *App) mailCode(ctx context.Context, s mfa.Subject, to, mailName string, lifetime time.Duration) string {
	code, err := a.codes.Issue(ctx, s)
	switch {
	case errors.Is(err, mfa.ErrCooldown):
		return "mfa.cooldown"
	case errors.Is(err, mfa.ErrSendLimit):
		a.audit(ctx, "mfa_send_limit", s.UserID, map[string]string{"purpose": string(s.Purpose)})
		return "mfa.send_limit"
	case errors.Is(err, mfa.ErrLocked):
		return "mfa.locked"
	case err != nil:
		a.log.ErrorContext(ctx, "issuing code failed", "request_id", requestID(ctx), "error", err)
		return "error.unavailable"
	}
	m, err := a.mails.compose(mailName, to, mailData{UserID: s.UserID, Code: code, Minutes: int(lifetime.Minutes())})
	if err == nil {
		err = a.mailer.Send(ctx, m)
	}
	if err != nil {
		if cerr := a.codes.Cancel(ctx, s); cerr != nil {
			a.log.ErrorContext(ctx, "withdrawing undelivered code failed", "request_id", requestID(ctx), "error", cerr)
		}
		a.log.ErrorContext(ctx, "mail delivery failed", "request_id", requestID(ctx), "mail", mailName, "error", err)
		a.audit(ctx, "mail_failed", s.UserID, map[string]string{"mail": mailName})
		return "mfa.mail_failed"
	}
	a.audit(ctx, "mfa_code_sent", s.UserID, map[string]string{"purpose": string(s.Purpose), "to": mfa.MaskAddress(to)})
	return ""
}

// notify mails a notice (address changed, reset done); failures are logged
// and audited but do not undo what was done.
func (a *App) notify(ctx context.Context, mailName, userID, to string, d mailData) {
	d.UserID = userID
	d.When = formatWhen(a.now())
	m, err := a.mails.compose(mailName, to, d)
	if err == nil {
		err = a.mailer.Send(ctx, m)
	}
	if err != nil {
		a.log.ErrorContext(ctx, "notice mail failed", "request_id", requestID(ctx), "mail", mailName, "error", err)
		a.audit(ctx, "mail_failed", userID, map[string]string{"mail": mailName})
		return
	}
	a.audit(ctx, "notice_sent", userID, map[string]string{"mail": mailName, "to": mfa.MaskAddress(to)})
}

func lockedUntil(err error) string {
	var we *mfa.WaitError
	if errors.As(err, &we) && errors.Is(err, mfa.ErrLocked) {
		return formatWhen(we.Until)
	}
	return ""
}

// statusFor picks the HTTP status of a page showing a message.
func statusFor(key string) int {
	switch key {
	case "mfa.mail_failed", "error.unavailable":
		return http.StatusServiceUnavailable
	case "mfa.locked", "mfa.cooldown", "mfa.send_limit":
		return http.StatusTooManyRequests
	case "error.internal":
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}
