package securitykeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

// loginPage is the key step of the MFA page.
type loginPage struct {
	TxID     string
	UserID   string
	Options  string // the assertion options for the browser script (JSON)
	NoKeys   bool   // the login asks for a key the user has not registered
	KeysOnly bool
	HasEmail bool
	HasApp   bool
	// LockedUntil is when a spent failure budget refills.
	LockedUntil string
}

// LockEnd lets the layout show when a lock ends.
func (p loginPage) LockEnd() string { return p.LockedUntil }

func (k *Keys) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	step, ok := k.app.FactorStep(w, r, r.URL.Query().Get("tx"))
	if !ok {
		return
	}
	k.renderLogin(w, r, http.StatusOK, step, "", nil)
}

// renderLogin shows the key step and begins a new assertion ceremony.
func (k *Keys) renderLogin(w http.ResponseWriter, r *http.Request, status int, step *idp.FactorStep, errKey string, cause error) {
	ctx := r.Context()
	page := loginPage{TxID: step.TxID, UserID: step.UserID, KeysOnly: step.KeysOnly,
		HasEmail: step.HasEmail && !step.KeysOnly, HasApp: step.HasApp && !step.KeysOnly, LockedUntil: idp.LockedUntil(cause)}
	u, err := k.loadUser(ctx, step.UserID, step.UserID)
	if err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	if len(u.creds) == 0 {
		page.NoKeys = true
		idp.AllowScripts(w)
		k.app.RenderPageWithError(w, r, status, "mfa_key", errKey, page)
		return
	}
	assertion, sd, err := k.wa.BeginLogin(u,
		webauthn.WithUserVerification(protocol.UserVerificationRequirement(k.cfg.UserVerification)))
	if err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	if err := k.putCeremony(ctx, sessLogin, ceremony{Session: *sd, UserID: step.UserID, TxID: step.TxID}); err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	if page.Options, err = optionsJSON(assertion); err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	idp.AllowScripts(w)
	k.app.RenderPageWithError(w, r, status, "mfa_key", errKey, page)
}

func (k *Keys) handleLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	step, ok := k.app.FactorStep(w, r, r.PostFormValue("tx"))
	if !ok {
		return
	}
	c, ok := k.takeCeremony(ctx, sessLogin, step.UserID)
	if !ok || c.TxID != step.TxID {
		k.renderLogin(w, r, http.StatusBadRequest, step, "key.expired", nil)
		return
	}
	// Every attempt counts against the failure budget the codes share.
	if err := k.app.SpendFactorTry(ctx, step.UserID); err != nil {
		key := k.app.FactorFailure(ctx, step.UserID, "locked", err)
		k.renderLogin(w, r, http.StatusTooManyRequests, step, key, err)
		return
	}
	amr, err := k.verifyAssertion(ctx, step.UserID, c, []byte(r.PostFormValue("credential")))
	if errors.Is(err, errOutage) {
		k.app.ServerError(w, r, err)
		return
	}
	if err != nil {
		reason := failureReason(err)
		if reason == "cloned" {
			k.app.Audit(ctx, "webauthn_clone_suspected", step.UserID, nil)
		}
		k.log.InfoContext(ctx, "security key refused", "request_id", idp.RequestID(ctx), "reason", reason, "error", err)
		key := k.app.FactorFailure(ctx, step.UserID, reason, err)
		k.renderLogin(w, r, http.StatusBadRequest, step, key, err)
		return
	}
	if err := k.app.FactorTrySucceeded(ctx, step.UserID); err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	k.app.FactorPassed(w, r, step, amr)
}

// errOutage marks a store failure met while checking an assertion.
var errOutage = errors.New("securitykeys: store unavailable")

// verifyAssertion checks the browser's answer to ceremony c for userID:
// signature, challenge, origin and RP ID (the library), then the signature
// counter, and records the use in one compare-and-set update, so of two
// parallel submissions of one assertion only one passes. It returns the
// key's amr value.
func (k *Keys) verifyAssertion(ctx context.Context, userID string, c ceremony, body []byte) (string, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return "", err
	}
	u, err := k.loadUser(ctx, userID, userID)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errOutage, err)
	}
	row, ok := u.row(parsed.RawID)
	if !ok {
		return "", protocol.ErrBadRequest.WithDetails("unknown credential")
	}
	cred, err := k.wa.ValidateLogin(u, c.Session, parsed)
	if err != nil {
		return "", err
	}
	if err := mfa.CheckSignCount(row.SignCount, parsed.Response.AuthenticatorData.Counter); err != nil {
		return "", err
	}
	cred.Authenticator.CloneWarning = false
	data, err := json.Marshal(cred)
	if err != nil {
		return "", err
	}
	err = k.store.UseWebAuthnCredential(ctx, row.ID, row.Uses, parsed.Response.AuthenticatorData.Counter, data, k.app.Now())
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		return "", err // a parallel use won, or the key was removed meanwhile
	case err != nil:
		return "", fmt.Errorf("%w: %w", errOutage, err)
	}
	if err := k.app.SetKeyCount(ctx, userID, len(u.rows), true); err != nil {
		return "", fmt.Errorf("%w: %w", errOutage, err)
	}
	return mfa.KeyAMR(cred.Flags.BackupEligible), nil
}
