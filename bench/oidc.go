package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
)

// rp is the relying party the virtual browsers log in to: it builds
// authorization requests, redeems codes at the token endpoint and verifies
// every ID token's signature, issuer, audience, expiry and nonce with an
// independent OIDC library (coreos/go-oidc), keys fetched from the JWKS.
type rp struct {
	clientID string // signed with alg (its id_token_signed_response_alg)
	authURL  string
	tokenURL string
	alg      string
	verifier *oidc.IDTokenVerifier
	client   *http.Client
}

// errNoOIDC means the IdP under test publishes no OpenID Connect discovery
// document (the provider is not built in).
var errNoOIDC = errors.New("the IdP has no OpenID Connect provider (no discovery document)")

func newRP(ctx context.Context, issuer, alg string, client *http.Client) (*rp, error) {
	id := benchClientID(alg)
	resp, err := client.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, errNoOIDC
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, client), issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	ep := provider.Endpoint()
	return &rp{
		clientID: id,
		authURL:  ep.AuthURL,
		tokenURL: ep.TokenURL,
		alg:      alg,
		// The key set is fetched through ctx's client on first use and
		// cached, as a real RP does; a new kid makes it fetch again.
		verifier: provider.Verifier(&oidc.Config{ClientID: id, SupportedSigningAlgs: []string{alg}}),
		client:   client,
	}, nil
}

// authRequest is one authorization request's secrets.
type authRequest struct {
	state, nonce, verifier string
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start returns a new authorization request (code flow, PKCE S256).
func (r *rp) start(scopes string) (authRequest, string) {
	ar := authRequest{state: randomString(), nonce: randomString(), verifier: randomString() + randomString()}
	sum := sha256.Sum256([]byte(ar.verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {r.clientID},
		"redirect_uri":          {redirectURI},
		"scope":                 {scopes},
		"state":                 {ar.state},
		"nonce":                 {ar.nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	sep := "?"
	if strings.Contains(r.authURL, "?") {
		sep = "&"
	}
	return ar, r.authURL + sep + q.Encode()
}

// tokens is a token endpoint answer.
type tokens struct {
	IDToken      string `json:"id_token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
}

// callback checks the redirect to the RP and redeems its code.
func (r *rp) callback(ctx context.Context, ar authRequest, to *url.URL) (tokens, error) {
	if to == nil {
		return tokens{}, errors.New("the login did not return to the relying party")
	}
	if !strings.HasPrefix(to.String(), redirectURI+"?") {
		return tokens{}, fmt.Errorf("redirected to %s, not the redirect URI", to.Redacted())
	}
	q := to.Query()
	if e := q.Get("error"); e != "" {
		return tokens{}, fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != ar.state {
		return tokens{}, errors.New("state does not match")
	}
	code := q.Get("code")
	if code == "" {
		return tokens{}, errors.New("no code in the redirect")
	}
	return r.token(ctx, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {ar.verifier},
	})
}

// refresh runs the refresh-token grant.
func (r *rp) refresh(ctx context.Context, refreshToken string) (tokens, error) {
	return r.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

func (r *rp) token(ctx context.Context, form url.Values) (tokens, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return tokens{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(r.clientID), url.QueryEscape(clientSecret))
	resp, err := r.client.Do(req)
	if err != nil {
		return tokens{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return tokens{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return tokens{}, fmt.Errorf("token endpoint: %s: %.200s", resp.Status, raw)
	}
	var t tokens
	if err := json.Unmarshal(raw, &t); err != nil {
		return tokens{}, fmt.Errorf("token endpoint: %w", err)
	}
	if t.AccessToken == "" || !strings.EqualFold(t.TokenType, "bearer") {
		return tokens{}, fmt.Errorf("token endpoint: no bearer access token")
	}
	return t, nil
}

// verify checks an ID token's signature and claims for user u; nonce is
// checked when given (refreshed ID tokens carry the login's nonce or none).
func (r *rp) verify(ctx context.Context, raw string, u *vuser, nonce string) error {
	if raw == "" {
		return errors.New("no id_token")
	}
	tok, err := r.verifier.Verify(oidc.ClientContext(ctx, r.client), raw)
	if err != nil {
		return fmt.Errorf("id_token: %w", err)
	}
	if nonce != "" && tok.Nonce != nonce {
		return errors.New("id_token: nonce does not match")
	}
	if tok.Subject != u.account.ID {
		return fmt.Errorf("id_token: sub %q, want %q", tok.Subject, u.account.ID)
	}
	return nil
}
