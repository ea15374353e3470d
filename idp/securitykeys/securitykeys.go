// Package securitykeys is the security-key and passkey (WebAuthn) factor:
// the "Security key / Passkey" tab of the One-Time Password Settings page
// (register, rename, remove), the key step of the login's MFA page, and
// the optional passkey-first login. It works over the login core's
// exported API (package idp) and the store's credential records; the
// ceremonies are github.com/go-webauthn/webauthn's.
//
// Mount it on an app after idp.New; the core then offers the factor,
// and a reset or staff clearing a user's factors removes the keys too.
package securitykeys

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

// Store is the persistence of credentials; *store.DB implements it.
type Store interface {
	AddWebAuthnCredential(ctx context.Context, c store.WebAuthnCredential) error
	WebAuthnCredentials(ctx context.Context, userID string) ([]store.WebAuthnCredential, error)
	GetWebAuthnCredential(ctx context.Context, id string) (store.WebAuthnCredential, error)
	UseWebAuthnCredential(ctx context.Context, id string, prevUses int64, signCount uint32, data []byte, now time.Time) error
	RenameWebAuthnCredential(ctx context.Context, userID, id, name string) error
	DeleteWebAuthnCredential(ctx context.Context, userID, id string) error
	DeleteUserWebAuthnCredentials(ctx context.Context, userID string) (int, error)
}

var _ Store = (*store.DB)(nil)

// Options wires the factor. App is required; Store defaults to the app's
// store when that has the credential methods (as *store.DB does).
type Options struct {
	App    *idp.App
	Store  Store
	Logger *slog.Logger
}

// ErrNoDomain: browsers accept no IP address as a WebAuthn relying-party
// ID, so security keys need a host name in server.public_url.
var ErrNoDomain = errors.New("securitykeys: server.public_url has no domain name (security keys need one)")

// Keys is the mounted factor.
type Keys struct {
	app   *idp.App
	store Store
	log   *slog.Logger
	cfg   config.WebAuthn
	wa    *webauthn.WebAuthn
	rpID  string
}

var _ idp.KeyFactor = (*Keys)(nil)

// Mount plugs the factor into app and serves its pages. It returns nil and
// no error when mfa.webauthn.enabled is off.
func Mount(opts Options) (*Keys, error) {
	if opts.App == nil {
		return nil, errors.New("securitykeys: App is required")
	}
	if opts.Store == nil {
		s, ok := opts.App.Store().(Store)
		if !ok {
			return nil, errors.New("securitykeys: the app's store keeps no WebAuthn credentials; set Options.Store")
		}
		opts.Store = s
	}
	cfg := opts.App.Config()
	if !cfg.MFA.WebAuthn.Enabled {
		return nil, nil
	}
	k, err := newKeys(opts)
	if err != nil {
		return nil, err
	}
	if err := opts.App.AddPages("security_keys", "mfa_key", "passkey_login"); err != nil {
		return nil, fmt.Errorf("securitykeys: %w", err)
	}
	k.routes()
	opts.App.SetKeyFactor(k)
	return k, nil
}

func newKeys(opts Options) (*Keys, error) {
	cfg := opts.App.Config()
	pub := opts.App.PublicURL()
	rpID := cfg.MFA.WebAuthn.RPID
	if rpID == "" {
		rpID = pub.Hostname()
	}
	if net.ParseIP(rpID) != nil {
		return nil, ErrNoDomain
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	wcfg := cfg.MFA.WebAuthn
	timeouts := webauthn.TimeoutConfig{Timeout: wcfg.Timeout, TimeoutUVD: wcfg.Timeout}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          rpID,
		RPDisplayName: cfg.Branding.OrgName.EN + " " + cfg.Branding.SystemName.EN,
		// Only the IdP's own origin: an assertion made for any other site
		// (a phishing page relaying the ceremony) is refused.
		RPOrigins: []string{pub.Scheme + "://" + pub.Host},
		// Ceremony lifetimes are enforced with the app's clock (ceremony).
		Timeouts:              webauthn.TimeoutsConfig{Login: timeouts, Registration: timeouts},
		AttestationPreference: protocol.PreferNoAttestation,
	})
	if err != nil {
		return nil, fmt.Errorf("securitykeys: %w", err)
	}
	return &Keys{app: opts.App, store: opts.Store, log: logger, cfg: wcfg, wa: wa, rpID: rpID}, nil
}

func (k *Keys) routes() {
	k.app.Handle("GET /user/otp/keys", http.HandlerFunc(k.handleSettings))
	k.app.Handle("POST /user/otp/keys/register", http.HandlerFunc(k.handleRegister))
	k.app.Handle("POST /user/otp/keys/rename", http.HandlerFunc(k.handleRename))
	k.app.Handle("POST /user/otp/keys/remove", http.HandlerFunc(k.handleRemove))
	k.app.Handle("GET /mfa/key", http.HandlerFunc(k.handleLoginPage))
	k.app.Handle("POST /mfa/key", http.HandlerFunc(k.handleLogin))
	if k.cfg.Passwordless {
		k.app.Handle("GET /login/passkey", http.HandlerFunc(k.handlePasskeyPage))
		k.app.Handle("POST /login/passkey", http.HandlerFunc(k.handlePasskey))
	}
}

// RemoveKeys deletes every key of the user (idp.KeyFactor).
func (k *Keys) RemoveKeys(ctx context.Context, userID string) (int, error) {
	return k.store.DeleteUserWebAuthnCredentials(ctx, userID)
}

// Keys lists the user's keys for the staff console (idp.KeyFactor).
func (k *Keys) Keys(ctx context.Context, userID string) ([]idp.KeyInfo, error) {
	creds, err := k.store.WebAuthnCredentials(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]idp.KeyInfo, 0, len(creds))
	for _, c := range creds {
		out = append(out, idp.KeyInfo{Name: c.Name, AAGUID: c.AAGUID, Created: c.Created, LastUsed: c.LastUsed})
	}
	return out, nil
}

// user is the account as the WebAuthn library sees it.
type user struct {
	id, display string
	handle      []byte
	creds       []webauthn.Credential
	rows        []store.WebAuthnCredential
}

func (u *user) WebAuthnID() []byte                         { return u.handle }
func (u *user) WebAuthnName() string                       { return u.id }
func (u *user) WebAuthnDisplayName() string                { return u.display }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// row returns the stored record of credential id.
func (u *user) row(id []byte) (store.WebAuthnCredential, bool) {
	want := encodeID(id)
	for _, r := range u.rows {
		if r.ID == want {
			return r, true
		}
	}
	return store.WebAuthnCredential{}, false
}

// loadUser reads the user's credentials. All of a user's credentials share
// one random user handle; the first registration makes it.
func (k *Keys) loadUser(ctx context.Context, userID, display string) (*user, error) {
	rows, err := k.store.WebAuthnCredentials(ctx, userID)
	if err != nil {
		return nil, err
	}
	u := &user{id: userID, display: display, rows: rows}
	if display == "" {
		u.display = userID
	}
	for _, r := range rows {
		var c webauthn.Credential
		if err := json.Unmarshal(r.Data, &c); err != nil {
			return nil, fmt.Errorf("securitykeys: decoding credential %s: %w", r.ID, err)
		}
		u.creds = append(u.creds, c)
		if u.handle == nil {
			u.handle = r.UserHandle
		}
	}
	if u.handle == nil {
		u.handle = make([]byte, 32)
		if _, err := rand.Read(u.handle); err != nil {
			return nil, err
		}
	}
	return u, nil
}

func encodeID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

// ceremony is a begun registration or login, kept in the browser's
// session until the browser answers; it is used at most once.
type ceremony struct {
	Session webauthn.SessionData
	UserID  string
	TxID    string
	Handle  []byte
	Expires time.Time
}

const (
	sessRegister = "webauthn_register"
	sessLogin    = "webauthn_login"
	sessPasskey  = "webauthn_passkey"
)

func (k *Keys) putCeremony(ctx context.Context, key string, c ceremony) error {
	c.Expires = k.app.Now().Add(k.cfg.Timeout)
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	k.app.Sessions().Put(ctx, key, raw)
	return nil
}

// takeCeremony returns the session's ceremony of this kind for userID and
// removes it, so each challenge is answered at most once.
func (k *Keys) takeCeremony(ctx context.Context, key, userID string) (ceremony, bool) {
	raw, _ := k.app.Sessions().Pop(ctx, key).([]byte)
	var c ceremony
	if len(raw) == 0 || json.Unmarshal(raw, &c) != nil || c.UserID != userID || !k.app.Now().Before(c.Expires) {
		return ceremony{}, false
	}
	return c, true
}

// optionsJSON is what the page hands the browser script.
func optionsJSON(v any) (string, error) {
	raw, err := json.Marshal(v)
	return string(raw), err
}

// failureReason names a refused ceremony for the audit log.
func failureReason(err error) string {
	var perr *protocol.Error
	switch {
	case errors.Is(err, mfa.ErrKeyCloned):
		return "cloned"
	case errors.Is(err, store.ErrConflict):
		return "replayed"
	case errors.As(err, &perr) && containsFold(perr.DevInfo+" "+perr.Details, "origin"):
		return "origin"
	case errors.As(err, &perr) && containsFold(perr.DevInfo+" "+perr.Details, "rp hash", "rpid", "relying party"):
		return "rp_id"
	default:
		return "invalid"
	}
}

func containsFold(s string, words ...string) bool {
	s = strings.ToLower(s)
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
