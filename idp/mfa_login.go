package idp

import (
	"context"
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

type mfaPage struct {
	Method      string // the factor this page asks for
	TxID        string
	UserID      string
	Masked      string
	Sent        bool
	LockedUntil string
	// OtherMethod links to the other factor's page when the user has both.
	OtherMethod string
	// HasKeys links to the security-key page.
	HasKeys bool
}

func (p mfaPage) lockEnd() string { return p.LockedUntil }

// getURL is the GET address of this MFA screen (see view.GetURL).
func (p mfaPage) getURL() string {
	return "/mfa?tx=" + url.QueryEscape(p.TxID) + "&method=" + url.QueryEscape(p.Method)
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

// pageMethod is the factor a request asks for, if the user has it, else the
// user's default.
func pageMethod(f *Factors, asked string) string {
	switch {
	case asked == methodEmail && f.Email != nil, asked == methodTOTP && f.TOTP != nil:
		return asked
	}
	return f.DefaultMethod()
}

func (a *App) handleMFAPage(w http.ResponseWriter, r *http.Request) {
	tx, u, f, ok := a.factorTx(w, r, r.URL.Query().Get("tx"))
	if !ok {
		return
	}
	method := pageMethod(f, r.URL.Query().Get("method"))
	if tx.Request.KeysOnly && a.keys == nil {
		// Security keys are off here: nothing can satisfy the request.
		a.renderError(w, r, http.StatusForbidden, "error.title", "key.unavailable")
		return
	}
	if a.keys != nil && (method == MethodSecurityKey || tx.Request.KeysOnly) {
		// The security-key step is the plug-in's page.
		http.Redirect(w, r, "/mfa/key?tx="+url.QueryEscape(tx.ID), http.StatusSeeOther)
		return
	}
	a.renderMFA(w, r, http.StatusOK, tx, u, f, method, "", nil)
}

func (a *App) renderMFA(w http.ResponseWriter, r *http.Request, status int, tx *LoginTx, u *SessionUser, f *Factors, method, errKey string, cause error) {
	if (method == MethodSecurityKey || f.Email == nil && f.TOTP == nil) && a.keys != nil {
		// A refused recovery code (or code) of a user whose method is the
		// key goes back to the key page, with the message.
		if errKey != "" {
			a.flashError(r.Context(), errKey)
		}
		http.Redirect(w, r, "/mfa/key?tx="+url.QueryEscape(tx.ID), http.StatusSeeOther)
		return
	}
	page := mfaPage{Method: method, TxID: tx.ID, UserID: u.ID, Sent: !tx.CodeSentAt.IsZero(), LockedUntil: lockedUntil(cause),
		HasKeys: a.keys != nil && f.Keys != nil}
	name := "mfa_email"
	if method == methodTOTP {
		name = "mfa_app"
		if f.Email != nil {
			page.OtherMethod = methodEmail
		}
	} else {
		page.Masked = mfa.MaskAddress(f.Email.Address)
		if f.TOTP != nil {
			page.OtherMethod = methodTOTP
		}
	}
	a.renderPage(w, r, status, name, errKey, page)
}

func (a *App) handleMFASend(w http.ResponseWriter, r *http.Request) {
	tx, u, f, ok := a.factorTx(w, r, r.PostFormValue("tx"))
	if !ok {
		return
	}
	if f.Email == nil {
		a.renderMFA(w, r, http.StatusBadRequest, tx, u, f, methodTOTP, "error.bad_request", nil)
		return
	}
	if errKey := a.sendLoginCode(r.Context(), tx); errKey != "" {
		a.renderMFA(w, r, statusFor(errKey), tx, u, f, methodEmail, errKey, nil)
		return
	}
	a.flashNotice(r.Context(), "mfa.resent")
	http.Redirect(w, r, a.stepURL(stepFactor, tx)+"&method="+methodEmail, http.StatusSeeOther)
}

// loginSubject names the login codes of a user. They are user-wide, not
// per transaction: a code mailed for one login keeps working in another
// login of the same user (each has passed the password), so another login
// or a reload never needs a new mail.
func (a *App) loginSubject(ctx context.Context, userID string) mfa.Subject {
	return mfa.Subject{UserID: userID, Purpose: mfa.PurposeLogin, Session: a.sessionBinding(ctx), Device: a.ownerDevice(ctx, userID)}
}

// sendLoginCode mails a login code to the registered address. It returns
// the catalog key of the message to show when that was not possible.
func (a *App) sendLoginCode(ctx context.Context, tx *LoginTx) string {
	u := a.currentUser(ctx)
	f, err := a.loadFactors(ctx, u.ID)
	if err != nil || f.Email == nil {
		return "error.internal"
	}
	subject := a.loginSubject(ctx, u.ID)
	if key := a.mailCode(ctx, subject, f.Email.Address, "otp", a.cfg.MFA.Email.CodeLifetime); key != "" {
		return key
	}
	tx.CodeSentAt = a.now()
	if err := a.saveTx(ctx, tx); err != nil {
		return "error.internal"
	}
	return ""
}

// handleMFAVerify checks the code typed on the MFA page: a mailed code or
// an authenticator-app code, as the form says.
func (a *App) handleMFAVerify(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tx, u, f, ok := a.factorTx(w, r, r.PostFormValue("tx"))
	if !ok {
		return
	}
	method := pageMethod(f, r.PostFormValue("method"))
	code := r.PostFormValue("code")
	if mfa.NormalizeCode(code) == "" {
		a.renderMFA(w, r, http.StatusBadRequest, tx, u, f, method, "mfa.code_missing", nil)
		return
	}
	var err error
	if method == methodTOTP {
		err = a.verifyTOTP(ctx, u.ID, code)
	} else {
		err = a.codes.Verify(ctx, a.loginSubject(ctx, u.ID), code)
		if err == nil {
			err = a.updateFactors(ctx, u.ID, func(f *Factors) error {
				if f.Email != nil {
					f.Email.LastUsed = a.now()
				}
				f.Preferred = methodEmail
				return nil
			})
		}
	}
	if err != nil {
		key := a.codeFailure(ctx, u.ID, "login", err)
		a.observeFactor(method, key)
		a.renderMFA(w, r, statusFor(key), tx, u, f, method, key, err)
		return
	}
	a.factorPassed(w, r, tx, u.ID, method)
}

// factorPassed records a verified factor and moves the login on.
func (a *App) factorPassed(w http.ResponseWriter, r *http.Request, tx *LoginTx, userID, method string) {
	ctx := r.Context()
	if err := a.recordFactor(ctx, tx, userID, method); err != nil {
		a.serverError(w, r, err)
		return
	}
	if r.PostFormValue("trust") != "" {
		if err := a.trustBrowser(ctx, w, r, userID); err != nil {
			a.log.WarnContext(ctx, "trusting browser failed", "request_id", requestID(ctx), "error", err)
		}
	}
	a.advance(w, r, tx)
}

// verifyTOTP checks an authenticator-app code against the shared failure
// budget, and accepts each time step at most once: the step is compared and
// stored in one atomic update, so two parallel requests with the same code
// cannot both pass.
func (a *App) verifyTOTP(ctx context.Context, userID, code string) error {
	if err := a.codes.SpendTry(ctx, a.factorSubject(ctx, userID)); err != nil {
		return err
	}
	// The last step is a single use other requests must see spent now.
	err := a.updateFactors(store.SpendAtOnce(ctx), userID, func(f *Factors) error {
		if f.TOTP == nil {
			return mfa.ErrCodeInvalid
		}
		secret, err := a.box.Open(f.TOTP.Secret, userID)
		if err != nil {
			return err
		}
		step, err := mfa.TOTPStep(secret, code, a.now(), f.TOTP.LastStep)
		if err != nil {
			return err
		}
		f.TOTP.LastStep = step
		f.TOTP.LastUsed = a.now()
		f.Preferred = methodTOTP
		return nil
	})
	if err != nil {
		return err
	}
	return a.codes.Succeeded(ctx, a.factorSubject(ctx, userID))
}

// handleMFARecovery accepts one of the user's recovery codes instead of a
// factor. Each code works once; its use is audited and mailed.
func (a *App) handleMFARecovery(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tx, u, f, ok := a.factorTx(w, r, r.PostFormValue("tx"))
	if !ok {
		return
	}
	method := pageMethod(f, r.PostFormValue("method"))
	err := a.useRecoveryCode(ctx, u.ID, r.PostFormValue("recovery_code"))
	if err != nil {
		key := a.codeFailure(ctx, u.ID, "recovery", err)
		a.observeFactor(methodRecovery, key)
		a.renderMFA(w, r, statusFor(key), tx, u, f, method, key, err)
		return
	}
	a.factorPassed(w, r, tx, u.ID, methodRecovery)
}

func (a *App) useRecoveryCode(ctx context.Context, userID, typed string) error {
	if err := a.codes.SpendTry(ctx, a.factorSubject(ctx, userID)); err != nil {
		return err
	}
	hash := mfa.RecoveryHash(a.secretKey(), typed)
	remaining := 0
	// A recovery code is single use: spent now, not at the commit.
	err := a.updateFactors(store.SpendAtOnce(ctx), userID, func(f *Factors) error {
		for i, h := range f.Recovery {
			if hmac.Equal([]byte(h), []byte(hash)) {
				f.Recovery = append(f.Recovery[:i:i], f.Recovery[i+1:]...)
				remaining = len(f.Recovery)
				return nil
			}
		}
		return mfa.ErrCodeInvalid
	})
	if err != nil {
		return err
	}
	a.audit(ctx, "recovery_code_used", userID, map[string]string{"remaining": strconv.Itoa(remaining)})
	if f, err := a.loadFactors(ctx, userID); err == nil && f.Email != nil {
		a.notify(ctx, "recovery_used", userID, f.Email.Address, mailData{Remaining: remaining})
	}
	return a.codes.Succeeded(ctx, a.factorSubject(ctx, userID))
}

// codeFailure audits a refused code and returns the message to show.
func (a *App) codeFailure(ctx context.Context, userID, purpose string, err error) string {
	detail := map[string]string{"purpose": purpose}
	var reason string
	switch {
	case errors.Is(err, mfa.ErrLocked):
		a.audit(ctx, "mfa_locked", userID, detail)
		return "mfa.locked"
	case errors.Is(err, mfa.ErrCodeVoided):
		reason = "voided"
	case errors.Is(err, mfa.ErrCodeExpired):
		reason = "expired"
	case errors.Is(err, mfa.ErrCodeReplayed):
		reason = "replayed"
	case errors.Is(err, mfa.ErrCodeInvalid):
		reason = "invalid"
	default:
		return a.failureKey(ctx, "verifying code failed", err)
	}
	detail["reason"] = reason
	a.audit(ctx, "mfa_failure", userID, detail)
	if purpose == "reset" && reason != "replayed" {
		return "reset.code_" + reason // the reset page speaks of a confirmation code
	}
	return "mfa.code_" + reason
}

// mailCode issues a code for s and mails it. If the mail cannot be sent the
// code is withdrawn (the cooldown and send count given back), so an outage
// costs the user nothing.
func (a *App) mailCode(ctx context.Context, s mfa.Subject, to, mailName string, lifetime time.Duration) string {
	return a.mailCodeTo(ctx, s, to, mailName, lifetime, false)
}

// mailCodeTo is mailCode; with replace the earlier codes of s are voided
// (they went to another address).
func (a *App) mailCodeTo(ctx context.Context, s mfa.Subject, to, mailName string, lifetime time.Duration, replace bool) string {
	issue := a.codes.Issue
	if replace {
		issue = a.codes.Replace
	}
	code, err := issue(ctx, s)
	switch {
	case errors.Is(err, mfa.ErrCooldown):
		return "mfa.cooldown"
	case errors.Is(err, mfa.ErrSendLimit):
		a.audit(ctx, "mfa_send_limit", s.UserID, map[string]string{"purpose": string(s.Purpose)})
		return "mfa.send_limit"
	case errors.Is(err, mfa.ErrLocked):
		return "mfa.locked"
	case err != nil:
		return a.failureKey(ctx, "issuing code failed", err)
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
