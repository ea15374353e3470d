package securitykeys

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

// maxNameRunes bounds a key's name.
const maxNameRunes = 64

// settingsPage is the security-key tab of One-Time Password Settings.
type settingsPage struct {
	TxID    string
	Mode    string // "full", "enroll" or "grant"
	Keys    []keyRow
	Options string // the registration options for the browser script (JSON)
	Notice  string // catalog key of a result to show
	Full    bool   // rename and remove are offered
	Max     bool   // the user has as many keys as allowed
	Name    string
	// EmailEnabled mirrors the other tabs (the tab bar is shared).
	KeysEnabled bool
	Tab         string
}

type keyRow struct {
	ID, Name, Created, LastUsed, Kind string
}

func (k *Keys) handleSettings(w http.ResponseWriter, r *http.Request) {
	acc, ok := k.app.SettingsAccess(w, r, r.URL.Query().Get("tx"))
	if !ok {
		return
	}
	k.renderSettings(w, r, http.StatusOK, acc, "", settingsPage{})
}

// renderSettings shows the user's keys and begins a new registration
// ceremony whose options the page carries to the browser script.
func (k *Keys) renderSettings(w http.ResponseWriter, r *http.Request, status int, acc idp.SettingsAccess, errKey string, page settingsPage) {
	ctx := r.Context()
	display := acc.UserID
	if u := k.app.CurrentUser(ctx); u != nil && u.ID == acc.UserID && u.DisplayName != "" {
		display = u.DisplayName
	}
	u, err := k.loadUser(ctx, acc.UserID, display)
	if err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	page.TxID, page.Mode, page.Full = acc.TxID, acc.Mode, acc.Mode == "full"
	page.KeysEnabled, page.Tab = true, "key"
	for _, row := range u.rows {
		var c webauthn.Credential
		_ = json.Unmarshal(row.Data, &c)
		page.Keys = append(page.Keys, keyRow{ID: row.ID, Name: row.Name, Created: formatWhen(row.Created),
			LastUsed: formatWhen(row.LastUsed), Kind: mfa.KeyAMR(c.Flags.BackupEligible)})
	}
	page.Max = len(u.rows) >= k.cfg.MaxCredentials
	if !page.Max {
		creation, sd, err := k.wa.BeginRegistration(u, k.registrationOptions(u)...)
		if err != nil {
			k.app.ServerError(w, r, err)
			return
		}
		if err := k.putCeremony(ctx, sessRegister, ceremony{Session: *sd, UserID: acc.UserID, Handle: u.handle}); err != nil {
			k.app.ServerError(w, r, err)
			return
		}
		if page.Options, err = optionsJSON(creation); err != nil {
			k.app.ServerError(w, r, err)
			return
		}
	}
	idp.AllowScripts(w)
	k.app.RenderPageWithError(w, r, status, "security_keys", errKey, page)
}

func (k *Keys) registrationOptions(u *user) []webauthn.RegistrationOption {
	opts := []webauthn.RegistrationOption{
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			// A discoverable credential also serves a passkey-first login;
			// a security key without room for one still registers.
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.UserVerificationRequirement(k.cfg.UserVerification),
		}),
		webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()),
	}
	if len(k.cfg.AllowedAAGUIDs) > 0 {
		// The model is only reported with attestation.
		opts = append(opts, webauthn.WithConveyancePreference(protocol.PreferDirectAttestation))
	}
	return opts
}

func (k *Keys) handleRegister(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, ok := k.app.SettingsAccess(w, r, r.PostFormValue("tx"))
	if !ok {
		return
	}
	name, nameOK := cleanName(r.PostFormValue("name"))
	if !nameOK {
		k.renderSettings(w, r, http.StatusBadRequest, acc, "key.name_invalid", settingsPage{})
		return
	}
	c, ok := k.takeCeremony(ctx, sessRegister, acc.UserID)
	if !ok {
		k.renderSettings(w, r, http.StatusBadRequest, acc, "key.expired", settingsPage{Name: name})
		return
	}
	u, err := k.loadUser(ctx, acc.UserID, acc.UserID)
	if err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	u.handle = c.Handle
	if len(u.rows) >= k.cfg.MaxCredentials {
		k.renderSettings(w, r, http.StatusBadRequest, acc, "key.too_many", settingsPage{})
		return
	}
	refuse := func(reason, msg string, err error) {
		k.log.InfoContext(ctx, "security key registration refused", "request_id", idp.RequestID(ctx), "reason", reason, "error", err)
		k.app.Audit(ctx, "webauthn_register_failed", acc.UserID, map[string]string{"reason": reason})
		k.renderSettings(w, r, http.StatusBadRequest, acc, msg, settingsPage{Name: name})
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(r.PostFormValue("credential")))
	if err != nil {
		refuse("invalid", "key.register_failed", err)
		return
	}
	cred, err := k.wa.CreateCredential(u, c.Session, parsed)
	if err != nil {
		refuse(failureReason(err), "key.register_failed", err)
		return
	}
	if !mfa.AAGUIDAllowed(cred.Authenticator.AAGUID, k.cfg.AllowedAAGUIDs) {
		refuse("model", "key.model_refused", nil)
		return
	}
	data, err := json.Marshal(cred)
	if err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	if name == "" {
		name = "Key " + strconv.Itoa(len(u.rows)+1)
	}
	row := store.WebAuthnCredential{ID: encodeID(cred.ID), UserID: acc.UserID, UserHandle: u.handle, Name: name,
		AAGUID: mfa.FormatAAGUID(cred.Authenticator.AAGUID), SignCount: cred.Authenticator.SignCount, Data: data,
		Created: k.app.Now()}
	amr := mfa.KeyAMR(cred.Flags.BackupEligible)
	// Recorded before the key is added: no factor is registered unrecorded.
	if err := k.app.AuditSecurity(ctx, "webauthn_registered", acc.UserID, map[string]string{"name": name, "aaguid": row.AAGUID,
		"kind": amr, "mode": acc.Mode}); err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	if err := k.store.AddWebAuthnCredential(ctx, row); err != nil {
		if errors.Is(err, store.ErrCredentialExists) {
			refuse("exists", "key.exists", err)
			return
		}
		k.app.ServerError(w, r, err)
		return
	}
	if err := k.app.SetKeyCount(ctx, acc.UserID, len(u.rows)+1, false); err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	k.app.NotifyKeyChange(ctx, acc.UserID, name, true)
	k.app.KeyRegistered(w, r, acc, amr)
}

// keyAction reads the signed-in user and the key a rename or remove is for.
func (k *Keys) keyAction(w http.ResponseWriter, r *http.Request) (idp.SettingsAccess, store.WebAuthnCredential, bool) {
	acc, ok := k.app.SettingsAccess(w, r, "")
	if !ok {
		return acc, store.WebAuthnCredential{}, false
	}
	if acc.Mode != "full" {
		k.app.RenderError(w, r, http.StatusForbidden, "error.title", "error.forbidden")
		return acc, store.WebAuthnCredential{}, false
	}
	c, err := k.store.GetWebAuthnCredential(r.Context(), r.PostFormValue("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.UserID != acc.UserID) {
		k.renderSettings(w, r, http.StatusNotFound, acc, "key.not_found", settingsPage{})
		return acc, c, false
	}
	if err != nil {
		k.app.ServerError(w, r, err)
		return acc, c, false
	}
	return acc, c, true
}

func (k *Keys) handleRename(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, c, ok := k.keyAction(w, r)
	if !ok {
		return
	}
	name, ok := cleanName(r.PostFormValue("name"))
	if !ok || name == "" {
		k.renderSettings(w, r, http.StatusBadRequest, acc, "key.name_invalid", settingsPage{})
		return
	}
	if err := k.app.AuditSecurity(ctx, "webauthn_renamed", acc.UserID, map[string]string{"from": c.Name, "to": name}); err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	if err := k.store.RenameWebAuthnCredential(ctx, acc.UserID, c.ID, name); err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	k.renderSettings(w, r, http.StatusOK, acc, "", settingsPage{Notice: "key.renamed"})
}

func (k *Keys) handleRemove(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, c, ok := k.keyAction(w, r)
	if !ok {
		return
	}
	if err := k.app.AuditSecurity(ctx, "webauthn_removed", acc.UserID, map[string]string{"name": c.Name, "aaguid": c.AAGUID, "reason": "user"}); err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	if err := k.store.DeleteWebAuthnCredential(ctx, acc.UserID, c.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		k.app.ServerError(w, r, err)
		return
	}
	left, err := k.store.WebAuthnCredentials(ctx, acc.UserID)
	if err == nil {
		err = k.app.SetKeyCount(ctx, acc.UserID, len(left), false)
	}
	if err != nil {
		k.app.ServerError(w, r, err)
		return
	}
	k.app.NotifyKeyChange(ctx, acc.UserID, c.Name, false)
	k.renderSettings(w, r, http.StatusOK, acc, "", settingsPage{Notice: "key.removed"})
}

// cleanName trims a key's name and refuses control characters and
// overlong names; "" means none was given.
func cleanName(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxNameRunes {
		return "", false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", false
		}
	}
	return s, true
}

// formatWhen shows a time as the other settings pages do ("" for never).
func formatWhen(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return idp.FormatWhen(t)
}
