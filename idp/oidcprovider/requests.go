package oidcprovider

import (
	"log/slog"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// authRequest is one authorization request from its arrival at /authorize
// until its code is redeemed (op.AuthRequest). It is stored as JSON.
type authRequest struct {
	ID                  string   `json:"id"`
	ClientID            string   `json:"client_id"`
	RedirectURI         string   `json:"redirect_uri"`
	State               string   `json:"state,omitempty"`
	Nonce               string   `json:"nonce,omitempty"`
	Scopes              []string `json:"scopes"`
	ResponseType        string   `json:"response_type"`
	ResponseMode        string   `json:"response_mode,omitempty"`
	CodeChallenge       string   `json:"code_challenge,omitempty"`
	CodeChallengeMethod string   `json:"code_challenge_method,omitempty"`
	Prompt              []string `json:"prompt,omitempty"`
	MaxAge              *uint    `json:"max_age,omitempty"`
	// HintSubject is the sub of a valid id_token_hint.
	HintSubject string `json:"hint_subject,omitempty"`
	RequireMFA  bool   `json:"require_mfa,omitempty"`
	// RequireKey: acr_values asked for a phishing-resistant login (a
	// security key or passkey only).
	RequireKey bool   `json:"require_key,omitempty"`
	LoginTx    string `json:"login_tx,omitempty"`
	// ConsentWait: the login is finished and the consent page is open.
	ConsentWait bool      `json:"consent_wait,omitempty"`
	Created     time.Time `json:"created"`

	// Set once the login is finished.
	IsDone   bool      `json:"done,omitempty"`
	UserID   string    `json:"user_id,omitempty"`
	Subject  string    `json:"sub,omitempty"`
	AuthTime time.Time `json:"auth_time,omitzero"`
	AMR      []string  `json:"amr,omitempty"`
	ACR      string    `json:"acr,omitempty"`
	User     *user     `json:"user,omitempty"`
	// SID is the IdP session's sid, for clients with a logout URI.
	SID string `json:"sid,omitempty"`
}

var (
	_ op.AuthRequest    = (*authRequest)(nil)
	_ op.LogAuthRequest = (*authRequest)(nil)
)

func (a *authRequest) GetID() string          { return a.ID }
func (a *authRequest) GetACR() string         { return a.ACR }
func (a *authRequest) GetAMR() []string       { return a.AMR }
func (a *authRequest) GetAudience() []string  { return []string{a.ClientID} }
func (a *authRequest) GetAuthTime() time.Time { return a.AuthTime }
func (a *authRequest) GetClientID() string    { return a.ClientID }
func (a *authRequest) GetNonce() string       { return a.Nonce }
func (a *authRequest) GetRedirectURI() string { return a.RedirectURI }
func (a *authRequest) GetScopes() []string    { return a.Scopes }
func (a *authRequest) GetState() string       { return a.State }
func (a *authRequest) GetSubject() string     { return a.Subject }
func (a *authRequest) Done() bool             { return a.IsDone }

func (a *authRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseType(a.ResponseType) }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.ResponseMode) }

func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: oidc.CodeChallengeMethod(a.CodeChallengeMethod)}
}

// LogValue keeps state, nonce and challenges out of logs.
func (a *authRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", a.ID), slog.String("client_id", a.ClientID),
		slog.Bool("done", a.IsDone))
}

func (a *authRequest) promptNone() bool  { return slices.Contains(a.Prompt, oidc.PromptNone) }
func (a *authRequest) promptLogin() bool { return slices.Contains(a.Prompt, oidc.PromptLogin) }

func (a *authRequest) maxAge() *time.Duration {
	if a.MaxAge == nil {
		return nil
	}
	d := time.Duration(*a.MaxAge) * time.Second
	return &d
}

// offline reports whether the request asks for refresh tokens.
func (a *authRequest) offline() bool { return slices.Contains(a.Scopes, oidc.ScopeOfflineAccess) }

// tokenData is what the store keeps about an access or refresh token.
type tokenData struct {
	Subject  string    `json:"sub"`
	Scopes   []string  `json:"scopes"`
	AuthTime time.Time `json:"auth_time,omitzero"`
	AMR      []string  `json:"amr,omitempty"`
	ACR      string    `json:"acr,omitempty"`
	SID      string    `json:"sid,omitempty"`
	// GrantExpires bounds every token of the grant: the refresh chain's
	// absolute end.
	GrantExpires time.Time `json:"grant_exp"`
}

// refreshRequest is a validated refresh token (op.RefreshTokenRequest).
type refreshRequest struct {
	tokenID  string // digest of the presented refresh token
	grantID  string
	clientID string
	userID   string
	data     tokenData
	scopes   []string
	// user is looked up afresh before new tokens are issued.
	user *user
}

var _ op.RefreshTokenRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetAMR() []string                 { return r.data.AMR }
func (r *refreshRequest) GetAudience() []string            { return []string{r.clientID} }
func (r *refreshRequest) GetAuthTime() time.Time           { return r.data.AuthTime }
func (r *refreshRequest) GetClientID() string              { return r.clientID }
func (r *refreshRequest) GetScopes() []string              { return r.scopes }
func (r *refreshRequest) GetSubject() string               { return r.data.Subject }
func (r *refreshRequest) SetCurrentScopes(scopes []string) { r.scopes = scopes }

// clientCredentialsRequest is a token request of a client for itself.
type clientCredentialsRequest struct {
	clientID string
	scopes   []string
}

var _ op.TokenRequest = (*clientCredentialsRequest)(nil)

func (c *clientCredentialsRequest) GetSubject() string    { return c.clientID }
func (c *clientCredentialsRequest) GetAudience() []string { return []string{c.clientID} }
func (c *clientCredentialsRequest) GetScopes() []string   { return c.scopes }
