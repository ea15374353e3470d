package securitykeys

import (
	"bytes"
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

// passkeyPage is the passkey-first sign-in (mfa.webauthn.passwordless).
type passkeyPage struct {
	TxID    string
	Options string
}

// errUnknownPasskey: the answer names no registered credential, or its
// user handle is not the one stored with it.
var errUnknownPasskey = errors.New("securitykeys: unknown passkey")

func (k *Keys) handlePasskeyPage(w http.ResponseWriter, r *http.Request) {
	txID := r.URL.Query().Get("tx")
	if !k.app.PasswordStep(w, r, txID) {
		return
	}
	k.renderPasskey(w, r, http.StatusOK, txID, "")
}

// renderPasskey begins a discoverable ceremony: the browser offers the
// passkeys it holds for this site, and user verification is required, as
// the key stands for both the password and the second factor.
func (k *Keys) renderPasskey(w http.ResponseWriter, r *http.Request, status int, txID, errKey string) {
	ctx := r.Context()
	assertion, sd, err := k.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	if err := k.putCeremony(ctx, sessPasskey, ceremony{Session: *sd, TxID: txID}); err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	page := passkeyPage{TxID: txID}
	if page.Options, err = optionsJSON(assertion); err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	idp.AllowScripts(w)
	k.app.RenderPageWithError(w, r, status, "passkey_login", errKey, page)
}

func (k *Keys) handlePasskey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	txID := r.PostFormValue("tx")
	if !k.app.PasswordStep(w, r, txID) {
		return
	}
	c, ok := k.takeCeremony(ctx, sessPasskey, "")
	if !ok || c.TxID != txID {
		k.renderPasskey(w, r, http.StatusBadRequest, txID, "key.expired")
		return
	}
	userID, amr, err := k.verifyPasskey(ctx, c, []byte(r.PostFormValue("credential")))
	if err == nil {
		err = k.app.SignInWithKey(w, r, txID, userID, amr)
		if err == nil {
			return
		}
	}
	switch {
	case errors.Is(err, errOutage):
		k.app.ServerError(w, r, err)
	case errors.Is(err, idp.ErrKeyAccountRefused), errors.Is(err, errUnknownPasskey), isRefusal(err):
		reason := failureReason(err)
		if errors.Is(err, idp.ErrKeyAccountRefused) {
			reason = "account"
		}
		k.log.InfoContext(ctx, "passkey sign-in refused", "request_id", idp.RequestID(ctx), "reason", reason, "error", err)
		if err := k.app.AuditSecurity(ctx, "login_failed", userID, map[string]string{"method": idp.MethodSecurityKey, "reason": reason}); err != nil {
			k.app.ServerError(w, r, err)
			return
		}
		k.renderPasskey(w, r, http.StatusUnauthorized, txID, "login.passkey_failed")
	default:
		k.app.ServerError(w, r, err)
	}
}

// isRefusal reports an answer the checks refused (as opposed to an outage).
func isRefusal(err error) bool {
	var perr *protocol.Error
	return errors.As(err, &perr) || errors.Is(err, mfa.ErrKeyCloned) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrNotFound)
}

// verifyPasskey checks a discoverable assertion: the credential and user
// handle are looked up, the library checks signature, challenge, origin,
// RP ID and user verification, then the counter is checked and the use
// recorded in one compare-and-set update, as for the key step.
func (k *Keys) verifyPasskey(ctx context.Context, c ceremony, body []byte) (string, string, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return "", "", err
	}
	var u *user
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		row, err := k.store.GetWebAuthnCredential(ctx, encodeID(rawID))
		if errors.Is(err, store.ErrNotFound) || (err == nil && !bytes.Equal(row.UserHandle, userHandle)) {
			return nil, errUnknownPasskey
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errOutage, err)
		}
		if u, err = k.loadUser(ctx, row.UserID, row.UserID); err != nil {
			return nil, fmt.Errorf("%w: %w", errOutage, err)
		}
		return u, nil
	}
	_, cred, err := k.wa.ValidatePasskeyLogin(handler, c.Session, parsed)
	if err != nil {
		if errors.Is(err, errOutage) {
			return "", "", err
		}
		if u == nil {
			return "", "", fmt.Errorf("%w: %w", errUnknownPasskey, err)
		}
		return u.id, "", err
	}
	row, ok := u.row(parsed.RawID)
	if !ok {
		return u.id, "", errUnknownPasskey
	}
	if err := mfa.CheckSignCount(row.SignCount, parsed.Response.AuthenticatorData.Counter); err != nil {
		return u.id, "", err
	}
	cred.Authenticator.CloneWarning = false
	data, err := json.Marshal(cred)
	if err != nil {
		return u.id, "", err
	}
	err = k.store.UseWebAuthnCredential(ctx, row.ID, row.Uses, parsed.Response.AuthenticatorData.Counter, data, k.app.Now())
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		return u.id, "", err
	case err != nil:
		return u.id, "", fmt.Errorf("%w: %w", errOutage, err)
	}
	if err := k.app.SetKeyCount(ctx, u.id, len(u.rows), true); err != nil {
		return u.id, "", fmt.Errorf("%w: %w", errOutage, err)
	}
	return u.id, mfa.KeyAMR(cred.Flags.BackupEligible), nil
}
