package idp

import (
	"context"
	"encoding/gob"
	"html/template"
	"net/http"

	"github.com/pquerna/otp"

	"github.com/campusidp/campusidp/mfa"
)

// Authenticator-app (TOTP) setup on the settings page's App tab.

const sessAppSetup = "app_setup" // *pendingApp

// pendingApp is a new authenticator secret waiting for its first code. It
// lives only in the server-side session until confirmed.
type pendingAppSetup struct {
	UserID string
	Secret string
	URL    string
}

func init() { gob.Register(&pendingAppSetup{}) }

// pendingApp returns the QR code and secret of the user's pending app setup,
// creating one on first view.
func (a *App) pendingApp(ctx context.Context, userID string) (template.URL, string, error) {
	p, _ := a.sessions.Get(ctx, sessAppSetup).(*pendingAppSetup)
	if p == nil || p.UserID != userID {
		key, err := mfa.NewTOTPKey(a.cfg.Branding.OrgName.EN, userID)
		if err != nil {
			return "", "", err
		}
		p = &pendingAppSetup{UserID: userID, Secret: key.Secret(), URL: key.URL()}
		a.sessions.Put(ctx, sessAppSetup, p)
	}
	key, err := otp.NewKeyFromURL(p.URL)
	if err != nil {
		return "", "", err
	}
	qr, err := mfa.TOTPQRCode(key, 220)
	if err != nil {
		return "", "", err
	}
	// The data: URI is built here from a PNG we drew; it is safe to embed.
	return template.URL(qr), p.Secret, nil
}

// handleAppConfirm registers the pending authenticator app once the user
// types a code it shows. The code's time step is stored so it cannot be
// used again to sign in.
func (a *App) handleAppConfirm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, ok := a.settingsUser(w, r, r.PostFormValue("tx"))
	if !ok {
		return
	}
	p, _ := a.sessions.Get(ctx, sessAppSetup).(*pendingAppSetup)
	if p == nil || p.UserID != acc.UserID {
		a.renderSettings(w, r, http.StatusBadRequest, acc, "otp.no_pending", settingsPage{Tab: "app"}, nil)
		return
	}
	if err := a.codes.SpendTry(ctx, a.factorSubject(ctx, acc.UserID)); err != nil {
		key := a.codeFailure(ctx, acc.UserID, "setup", err)
		a.renderSettings(w, r, statusFor(key), acc, key, settingsPage{Tab: "app"}, err)
		return
	}
	step, err := mfa.TOTPStep(p.Secret, r.PostFormValue("code"), a.now(), 0)
	if err != nil {
		key := a.codeFailure(ctx, acc.UserID, "setup", err)
		a.renderSettings(w, r, statusFor(key), acc, key, settingsPage{Tab: "app"}, err)
		return
	}
	if err := a.codes.Succeeded(ctx, a.factorSubject(ctx, acc.UserID)); err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := a.auditSecurity(ctx, "mfa_totp_registered", acc.UserID, map[string]string{"mode": acc.Mode}); err != nil {
		a.serverError(w, r, err)
		return
	}
	now := a.now()
	err = a.updateFactors(ctx, acc.UserID, func(f *Factors) error {
		f.TOTP = &TOTPFactor{Secret: a.box.Seal(p.Secret, acc.UserID), EnrolledAt: now, LastUsed: now, LastStep: step}
		f.Preferred = methodTOTP
		return nil
	})
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.sessions.Remove(ctx, sessAppSetup)
	a.factorRegistered(w, r, acc, methodTOTP, "app")
}
