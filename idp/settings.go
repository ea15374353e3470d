package idp

import (
	"context"
	"encoding/gob"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/campusidp/campusidp/mfa"
)

// Session keys of the settings and reset flows.
const (
	sessSetup      = "otp_setup"   // *pendingSetup
	sessResetGrant = "reset_grant" // *resetGrant
)

func init() {
	gob.Register(&pendingSetup{})
	gob.Register(&resetGrant{})
	gob.Register(&resetState{})
}

// pendingSetup is an address waiting for its confirmation code.
type pendingSetup struct {
	UserID  string
	Address string
}

// resetGrant lets a user who just confirmed a reset register a new address,
// and nothing else: it never counts as a login.
type resetGrant struct {
	UserID string
	Until  time.Time
	Tx     string // the application's login the reset was begun from
}

// settingsAccess says who may use the settings page and how.
type settingsAccess struct {
	UserID string
	Mode   string   // "full", "enroll" or "grant"
	Tx     *LoginTx // the login being completed, in enroll mode
	// ResumeTx is the application's login a reset was begun from, in
	// grant mode: the grant is no login, so "Continue signing in" leads
	// back to that login, which asks for the password and the new factor.
	ResumeTx string
}

// settingsUser decides whether this request may change second-factor
// settings: a full login, a login that must enroll first, or a reset grant.
// Otherwise it starts a login that comes back here and returns false.
func (a *App) settingsUser(w http.ResponseWriter, r *http.Request, txID string) (settingsAccess, bool) {
	ctx := r.Context()
	if g, _ := a.sessions.Get(ctx, sessResetGrant).(*resetGrant); g != nil && a.now().Before(g.Until) {
		return settingsAccess{UserID: g.UserID, Mode: "grant", ResumeTx: g.Tx}, true
	}
	u := a.currentUser(ctx)
	if u != nil {
		tx := &LoginTx{}
		if txID != "" {
			t, err := a.loadTx(ctx, txID)
			if err == nil {
				tx = t
			}
		}
		st, err := a.pendingStep(ctx, tx)
		if err != nil {
			a.serverError(w, r, err)
			return settingsAccess{}, false
		}
		switch st {
		case stepDone:
			return settingsAccess{UserID: u.ID, Mode: "full"}, true
		case stepEnroll:
			acc := settingsAccess{UserID: u.ID, Mode: "enroll"}
			if tx.ID != "" {
				acc.Tx = tx
			}
			return acc, true
		}
	}
	a.startLocalLogin(w, r, "/user/otp", AuthRequest{})
	return settingsAccess{}, false
}

type settingsPage struct {
	Tab         string // "email" or "app"
	TxID        string
	Current     string
	Address     string
	Sent        bool
	SentTo      string
	Complete    bool
	ContinueURL string
	Blocked     []string
	LockedUntil string

	// App tab.
	QR           template.URL // data: URI of the QR code, drawn by the server
	Secret       string       // the same secret, for typing into the app
	AppEnrolled  string       // when the current app was registered
	EmailEnabled bool
	// KeysEnabled shows the security-key tab (the plug-in is mounted).
	KeysEnabled bool

	// Recovery codes: shown once when issued; the count otherwise.
	RecoveryCodes []string
	RecoveryLeft  int
	ShowRecovery  bool
}

func (p settingsPage) lockEnd() string { return p.LockedUntil }

// getURL is the GET address of this settings tab (see view.GetURL).
func (p settingsPage) getURL() string {
	u := "/user/otp"
	sep := "?"
	if p.TxID != "" {
		u += "?tx=" + url.QueryEscape(p.TxID)
		sep = "&"
	}
	if p.Tab == "app" {
		u += sep + "tab=app"
	}
	return u
}

type trustedRow struct {
	ID, Label, Created, LastUsed string
}

func (a *App) handleSettingsPage(w http.ResponseWriter, r *http.Request) {
	acc, ok := a.settingsUser(w, r, r.URL.Query().Get("tx"))
	if !ok {
		return
	}
	a.renderSettings(w, r, http.StatusOK, acc, "", settingsPage{Tab: r.URL.Query().Get("tab")}, nil)
}

func (a *App) renderSettings(w http.ResponseWriter, r *http.Request, status int, acc settingsAccess, errKey string, page settingsPage, cause error) {
	ctx := r.Context()
	f, err := a.loadFactors(ctx, acc.UserID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if acc.Tx != nil {
		page.TxID = acc.Tx.ID
	}
	switch {
	case page.Tab == tabKey && a.keys != nil && page.Complete:
	case page.Tab == tabKey && a.keys != nil:
		// The security-key tab is the plug-in's own page.
		http.Redirect(w, r, "/user/otp/keys"+strings.TrimPrefix(settingsURL(acc), "/user/otp"), http.StatusSeeOther)
		return
	case page.Tab != "app":
		page.Tab = "email"
	}
	page.KeysEnabled = a.keys != nil
	if f.Email != nil {
		page.Current = mfa.MaskAddress(f.Email.Address)
	}
	if f.TOTP != nil {
		page.AppEnrolled = formatWhen(f.TOTP.EnrolledAt)
	}
	page.RecoveryLeft = len(f.Recovery)
	page.ShowRecovery = acc.Mode == "full" && f.Enrolled()
	if page.Tab == "app" && !page.Complete {
		qr, secret, err := a.pendingApp(ctx, acc.UserID)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		page.QR, page.Secret = qr, secret
	}
	if p, _ := a.sessions.Get(ctx, sessSetup).(*pendingSetup); p != nil && p.UserID == acc.UserID && !page.Complete {
		page.Sent = true
		page.SentTo = p.Address
		if page.Address == "" {
			page.Address = p.Address
		}
	}
	page.Blocked = a.cfg.MFA.Email.BlockedDomains
	page.LockedUntil = lockedUntil(cause)
	a.renderPage(w, r, status, "otp_settings", errKey, page)
}

// sessionBinding returns the random value that ties codes and transactions
// to this browser session.
func (a *App) sessionBinding(ctx context.Context) string { return a.sessionSecret(ctx, sessBinding) }

// setupSubject names the setup codes of this settings session.
func (a *App) setupSubject(ctx context.Context, userID string) mfa.Subject {
	b := a.sessionBinding(ctx)
	return mfa.Subject{UserID: userID, Purpose: mfa.PurposeSetup, Binding: b, Session: b, Device: a.ownerDevice(ctx, userID)}
}

func (a *App) handleSettingsSend(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, ok := a.settingsUser(w, r, r.PostFormValue("tx"))
	if !ok {
		return
	}
	typed := r.PostFormValue("address")
	addr, err := mfa.CheckAddress(typed, a.cfg.MFA.Email.BlockedDomains)
	if err != nil {
		key := "otp.invalid_address"
		if errors.Is(err, mfa.ErrAddressBlocked) {
			key = "otp.blocked"
		}
		a.sessions.Remove(ctx, sessSetup)
		a.renderSettings(w, r, http.StatusBadRequest, acc, key, settingsPage{Address: typed}, nil)
		return
	}
	subject := a.setupSubject(ctx, acc.UserID)
	// A code proves the address it went to: sending to another address
	// voids the codes mailed to the earlier one.
	p, _ := a.sessions.Get(ctx, sessSetup).(*pendingSetup)
	replace := p == nil || p.UserID != acc.UserID || p.Address != addr
	if key := a.mailCodeTo(ctx, subject, addr, "otp", a.cfg.MFA.Email.CodeLifetime, replace); key != "" {
		a.renderSettings(w, r, statusFor(key), acc, key, settingsPage{Address: typed}, nil)
		return
	}
	a.sessions.Put(ctx, sessSetup, &pendingSetup{UserID: acc.UserID, Address: addr})
	http.Redirect(w, r, settingsURL(acc), http.StatusSeeOther)
}

func settingsURL(acc settingsAccess) string {
	if acc.Tx != nil {
		return "/user/otp?tx=" + acc.Tx.ID
	}
	return "/user/otp"
}

func (a *App) handleSettingsConfirm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, ok := a.settingsUser(w, r, r.PostFormValue("tx"))
	if !ok {
		return
	}
	p, _ := a.sessions.Get(ctx, sessSetup).(*pendingSetup)
	if p == nil || p.UserID != acc.UserID {
		a.renderSettings(w, r, http.StatusBadRequest, acc, "otp.no_pending", settingsPage{}, nil)
		return
	}
	if err := a.codes.Verify(ctx, a.setupSubject(ctx, acc.UserID), r.PostFormValue("code")); err != nil {
		key := a.codeFailure(ctx, acc.UserID, "setup", err)
		a.renderSettings(w, r, statusFor(key), acc, key, settingsPage{}, err)
		return
	}

	if err := a.auditSecurity(ctx, "mfa_email_registered", acc.UserID, map[string]string{"to": mfa.MaskAddress(p.Address), "mode": acc.Mode}); err != nil {
		a.serverError(w, r, err)
		return
	}
	var old string
	now := a.now()
	err := a.updateFactors(ctx, acc.UserID, func(f *Factors) error {
		old = ""
		if f.Email != nil {
			old = f.Email.Address
		}
		f.Email = &EmailFactor{Address: p.Address, EnrolledAt: now, LastUsed: now}
		f.Preferred = methodEmail
		return nil
	})
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if old != p.Address {
		if err := a.voidLoginCodes(ctx, acc.UserID); err != nil {
			a.serverError(w, r, err)
			return
		}
	}
	a.sessions.Remove(ctx, sessSetup)
	if old != "" && old != p.Address {
		// A changed address must not leave old trusted browsers behind, and
		// the old address hears of the change.
		if _, err := a.RevokeTrustedBrowsers(ctx, acc.UserID, ""); err != nil {
			a.log.ErrorContext(ctx, "revoking trusted browsers failed", "request_id", requestID(ctx), "error", err)
		}
		a.notify(ctx, "address_changed", acc.UserID, old, mailData{NewAddress: mfa.MaskAddress(p.Address)})
	}
	a.factorRegistered(w, r, acc, methodEmail, "email")
}

// factorRegistered finishes a setup: the grant is spent, a waiting login
// counts the factor, and the first factor comes with recovery codes.
func (a *App) factorRegistered(w http.ResponseWriter, r *http.Request, acc settingsAccess, method, tab string, amr ...string) {
	ctx := r.Context()
	page := settingsPage{Complete: true, Tab: tab}
	switch acc.Mode {
	case "grant":
		// The grant is spent: it allowed exactly this registration.
		a.sessions.Remove(ctx, sessResetGrant)
		a.sessions.Put(ctx, sessResetDone, true)
		// Only an application's login: a reset begun on the stand-alone
		// account page ends as the manual says, with Logout.
		if tx, err := a.loadTx(ctx, acc.ResumeTx); err == nil && tx.Request.ClientID != "" {
			next, err := a.nextURL(ctx, tx)
			if err != nil {
				a.serverError(w, r, err)
				return
			}
			page.ContinueURL = next
		}
	case "enroll":
		// Confirming a code of the new factor proves it for the login that
		// is waiting on it.
		if err := a.recordFactor(ctx, acc.Tx, acc.UserID, method, amr...); err != nil {
			a.serverError(w, r, err)
			return
		}
		if acc.Tx != nil {
			if err := a.saveTx(ctx, acc.Tx); err != nil {
				a.serverError(w, r, err)
				return
			}
			next, err := a.nextURL(ctx, acc.Tx)
			if err != nil {
				a.serverError(w, r, err)
				return
			}
			page.ContinueURL = next
		}
	}
	f, err := a.loadFactors(ctx, acc.UserID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if len(f.Recovery) == 0 {
		codes, err := a.newRecoveryCodes(ctx, acc.UserID)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		page.RecoveryCodes = codes
	}
	a.renderSettings(w, r, http.StatusOK, acc, "", page, nil)
}

// newRecoveryCodes replaces the user's recovery codes; the new ones are
// shown once and stored only as keyed hashes.
func (a *App) newRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	codes, hashes := mfa.NewRecoveryCodes(a.secretKey())
	if err := a.auditSecurity(ctx, "recovery_codes_issued", userID, map[string]string{"count": strconv.Itoa(len(codes))}); err != nil {
		return nil, err
	}
	if err := a.updateFactors(ctx, userID, func(f *Factors) error {
		f.Recovery = hashes
		return nil
	}); err != nil {
		return nil, err
	}
	return codes, nil
}

// handleRecoveryRegenerate issues new recovery codes (voiding the old ones)
// for a fully signed-in user.
func (a *App) handleRecoveryRegenerate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, ok := a.settingsUser(w, r, "")
	if !ok {
		return
	}
	if acc.Mode != "full" {
		a.renderError(w, r, http.StatusForbidden, "error.title", "error.forbidden")
		return
	}
	codes, err := a.newRecoveryCodes(ctx, acc.UserID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.renderSettings(w, r, http.StatusOK, acc, "", settingsPage{RecoveryCodes: codes, Tab: r.PostFormValue("tab")}, nil)
}

// handleTrustedRevoke revokes one or all of the signed-in user's trusted
// browsers from the account page.
func (a *App) handleTrustedRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := a.requireLogin(w, r)
	if u == nil {
		return
	}
	only := r.PostFormValue("id")
	if only == "all" {
		only = ""
	} else if len(only) != 16 {
		a.renderError(w, r, http.StatusBadRequest, "error.title", "error.bad_request")
		return
	}
	// Audited before the revocation, so the count is of the browsers it is
	// about to revoke.
	ids, err := a.trustedIDs(ctx, u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	n := 0
	for _, id := range ids {
		if strings.HasPrefix(id, only) {
			n++
		}
	}
	if err := a.auditSecurity(ctx, "trusted_browser_revoked", u.ID, map[string]string{"count": strconv.Itoa(n)}); err != nil {
		a.serverError(w, r, err)
		return
	}
	if _, err := a.RevokeTrustedBrowsers(ctx, u.ID, only); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.flashNotice(ctx, "otp.trusted_revoked")
	http.Redirect(w, r, "/user/", http.StatusSeeOther)
}
