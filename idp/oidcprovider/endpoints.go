package oidcprovider

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/store"
)

func slogLevelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}

// writeJSON answers a protocol request with JSON that must not be cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeOAuthError(w http.ResponseWriter, status int, e *oidc.Error) {
	writeJSON(w, status, e)
}

// Grant types of the token endpoint. No password grant, no JWT bearer or
// token exchange, no device flow.
var tokenGrants = []string{string(oidc.GrantTypeCode), string(oidc.GrantTypeRefreshToken), string(oidc.GrantTypeClientCredentials)}

// handleToken is the token endpoint. Before op handles the request it
// refuses grant types this provider does not offer and holds each
// confidential client to its registered authentication method.
func (p *Provider) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("the request body is not a form"))
		return
	}
	grant := r.PostForm.Get("grant_type")
	switch {
	case grant == "":
		writeOAuthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("grant_type is missing"))
		return
	case !slices.Contains(tokenGrants, grant):
		writeOAuthError(w, http.StatusBadRequest, oidc.ErrUnsupportedGrantType().WithDescription("the grant type is not supported"))
		return
	}
	c, e := p.checkClientAuthMethod(r)
	if e != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		writeOAuthError(w, http.StatusUnauthorized, e)
		return
	}
	// op signs the tokens of this answer with Storage.SigningKey(ctx),
	// which knows the client only through the request's context. The
	// client named here is the one op then authenticates and issues to.
	r = r.WithContext(withSigningAlg(r.Context(), c.signingAlg))
	if grant == string(oidc.GrantTypeCode) {
		r = r.WithContext(withCodeExchange(r.Context()))
		if status, e := p.checkCodeRequest(r); e != nil {
			switch status {
			case http.StatusUnauthorized:
				w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
			case http.StatusServiceUnavailable:
				w.Header().Set("Retry-After", "30")
			}
			writeOAuthError(w, status, e)
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	rec := &statusWriter{ResponseWriter: w, status: http.StatusOK, hide5xx: true}
	p.op.ServeHTTP(rec, r)
	if rec.status == http.StatusOK && grant != string(oidc.GrantTypeClientCredentials) {
		// op signed one ID token into this answer.
		p.storage.issued(metrics.TokenID)
	}
}

// statusWriter remembers the status of an answer. With hide5xx, a server
// error's body (op puts the text of whatever error it got there: store or
// directory messages naming internal hosts) is replaced by a fixed one;
// op has logged the error itself.
type statusWriter struct {
	http.ResponseWriter
	status  int
	hide5xx bool
	hidden  bool
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	if s.hide5xx && code >= 500 {
		s.hidden = true
		s.Header().Del("Content-Length")
		writeOAuthError(s.ResponseWriter, code, oidc.ErrServerError().WithDescription("the identity provider could not answer the request"))
		return
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.hidden {
		return len(b), nil
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// checkClientAuthMethod refuses a client that authenticates other than it
// is registered to: a public client with a secret, a client_secret_basic
// client with a form secret, and so on. An unknown client is refused here,
// whatever the grant: it is the caller's mistake, logged at info, and the
// answer does not repeat the ID it sent.
func (p *Provider) checkClientAuthMethod(r *http.Request) (*client, *oidc.Error) {
	basicID, _, basic := r.BasicAuth()
	formSecret := r.PostForm.Has("client_secret")
	clientID := r.PostForm.Get("client_id")
	if basic {
		clientID, _ = url.QueryUnescape(basicID) // RFC 6749 2.3.1
	}
	c, ok := p.storage.clients[clientID]
	if !ok {
		p.log.InfoContext(r.Context(), "oidc token request from an unknown client",
			"grant_type", r.PostForm.Get("grant_type"), "basic", basic)
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	used := config.OIDCAuthNone
	switch {
	case basic && formSecret:
		return nil, oidc.ErrInvalidRequest().WithDescription("use one client authentication method, not two")
	case basic:
		used = config.OIDCAuthBasic
	case formSecret:
		used = config.OIDCAuthPost
	}
	// A secret-based client whose config does not pin a method may send the
	// secret either way: common RP libraries default to client_secret_post,
	// and discovery advertises both.
	if c.cfg.TokenEndpointAuthMethod == "" && used == config.OIDCAuthPost {
		return c, nil
	}
	if want := c.cfg.AuthMethod(); used != want {
		return nil, oidc.ErrInvalidClient().WithDescription("the client must authenticate with %s", want)
	}
	return c, nil
}

// checkCodeRequest proves, before op redeems the code, that the request
// comes from the code's client with its secret, its redirect_uri and the
// PKCE verifier. op would consume the code first; a request that proves
// less must neither use up a code nor, as a "second use", revoke the
// tokens of the legitimate redemption.
func (p *Provider) checkCodeRequest(r *http.Request) (int, *oidc.Error) {
	clientID, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		clientID, err1 = url.QueryUnescape(clientID)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return http.StatusUnauthorized, oidc.ErrInvalidClient().WithDescription("invalid basic authentication")
		}
	} else {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c, ok := p.storage.clients[clientID]
	if !ok {
		return http.StatusUnauthorized, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	if c.confidential() && !c.secret.check(secret) {
		return http.StatusUnauthorized, oidc.ErrInvalidClient().WithDescription("invalid client_id / client_secret")
	}
	rec, err := p.storage.peekCode(r.Context(), r.PostForm.Get("code"))
	if errors.Is(err, store.ErrNotFound) {
		return http.StatusBadRequest, oidc.ErrInvalidGrant().WithDescription("invalid code")
	}
	if idp.IsUnavailable(err) {
		p.log.WarnContext(r.Context(), "oidc code lookup failed: store unavailable", "request_id", idp.RequestID(r.Context()), "error", err)
		return http.StatusServiceUnavailable, oidc.ErrServerError().WithDescription("the identity provider is temporarily unavailable")
	}
	if err != nil {
		p.log.ErrorContext(r.Context(), "oidc code lookup failed", "error", err)
		return http.StatusInternalServerError, oidc.ErrServerError()
	}
	a := rec.Request
	switch {
	case a.ClientID != clientID:
		return http.StatusBadRequest, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client")
	case r.PostForm.Get("redirect_uri") != a.RedirectURI:
		return http.StatusBadRequest, oidc.ErrInvalidGrant().WithDescription("redirect_uri does not match the authorization request")
	}
	verifier := r.PostForm.Get("code_verifier")
	switch challenge := a.GetCodeChallenge(); {
	case challenge == nil && verifier != "":
		return http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("code_verifier without a code_challenge")
	case challenge == nil:
	case verifier == "":
		return http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("code_verifier is required")
	case !oidc.VerifyCodeChallenge(challenge, verifier):
		return http.StatusBadRequest, oidc.ErrInvalidGrant().WithDescription("invalid code_verifier")
	}
	return 0, nil
}

// handleUserinfo is the userinfo endpoint (GET and POST, RFC 6750 token
// in the Authorization header or, with POST, the form).
func (p *Provider) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		writeOAuthError(w, http.StatusMethodNotAllowed, oidc.ErrInvalidRequest().WithDescription("use GET or POST"))
		return
	}
	ctx := p.ctx(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	token, err := op.ParseUserinfoRequest(r, p.op.Decoder())
	if err != nil || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="userinfo"`)
		writeOAuthError(w, http.StatusUnauthorized, oidc.ErrInvalidRequest().WithDescription("no access token"))
		return
	}
	tokenID, ok := p.accessTokenID(ctx, token)
	if !ok {
		invalidToken(w)
		return
	}
	info := new(oidc.UserInfo)
	err = p.storage.userinfo(ctx, info, tokenID)
	switch {
	case errors.Is(err, errInvalidToken):
		invalidToken(w)
		return
	case err != nil:
		p.log.ErrorContext(ctx, "oidc userinfo failed", "error", err)
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func invalidToken(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="userinfo", error="invalid_token"`)
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
}

// accessTokenID reads the token ID out of an opaque (sealed) or JWT access
// token; whether the token is still live is the store's to say.
func (p *Provider) accessTokenID(ctx context.Context, token string) (string, bool) {
	if plain, err := p.op.Crypto().Decrypt(token); err == nil {
		id, _, found := strings.Cut(plain, ":")
		return id, found && id != ""
	}
	claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, token, p.op.AccessTokenVerifier(ctx))
	if err != nil || claims.JWTID == "" {
		return "", false
	}
	return claims.JWTID, true
}

// handleEndSession is RP-initiated logout. A form-posted request is seen
// again by GET, so that the browser's session cookie (SameSite=Lax, not
// sent with cross-site POSTs) comes along and the session really ends.
func (p *Provider) handleEndSession(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		p.op.ServeHTTP(w, r)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			p.showError(w, r, http.StatusBadRequest, pageBadRequest, err)
			return
		}
		http.Redirect(w, r, pathEndSession+"?"+r.PostForm.Encode(), http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, POST")
		p.showError(w, r, http.StatusMethodNotAllowed, pageBadRequest, errors.New("method not allowed"))
	}
}

// handleDiscovery serves the provider's metadata, describing exactly what
// it offers (op's default document lists flows this provider refuses).
func (p *Provider) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	ctx := p.ctx(r)
	algs, err := p.storage.SignatureAlgorithms(ctx)
	if err != nil {
		p.log.ErrorContext(ctx, "oidc discovery: signing keys unavailable", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	signing := make([]string, len(algs))
	for i, a := range algs {
		signing[i] = string(a)
	}
	grants := []string{string(oidc.GrantTypeCode), string(oidc.GrantTypeRefreshToken)}
	subjects := []string{config.OIDCSubjectPublic}
	for _, c := range p.storage.clients {
		if c.cfg.ClientCredentials && !slices.Contains(grants, string(oidc.GrantTypeClientCredentials)) {
			grants = append(grants, string(oidc.GrantTypeClientCredentials))
		}
		if c.cfg.Subject() == config.OIDCSubjectPairwise && !slices.Contains(subjects, config.OIDCSubjectPairwise) {
			subjects = append(subjects, config.OIDCSubjectPairwise)
		}
	}
	acrs := []string{p.cfg.OIDC.ACR.Password, p.cfg.OIDC.ACR.MFA}
	for _, v := range p.cfg.OIDC.ACR.Methods.Values() {
		if !slices.Contains(acrs, v) {
			acrs = append(acrs, v)
		}
	}
	if !slices.Contains(acrs, config.OIDCACRREFEDSMFA) {
		acrs = append(acrs, config.OIDCACRREFEDSMFA)
	}
	claims := []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "c_hash"}
	for _, c := range p.cfg.OIDC.Claims {
		if p.cfg.ClaimReleasable(c) { // advertise only what can be released
			claims = append(claims, c.Name)
		}
	}
	if p.cfg.OIDC.EmailVerified {
		claims = append(claims, "email_verified")
	}
	abs := func(path string) string { return strings.TrimSuffix(p.issuer, "/") + path }
	doc := map[string]any{
		"issuer":                                        p.issuer,
		"authorization_endpoint":                        abs(pathAuthorize),
		"token_endpoint":                                abs(pathToken),
		"userinfo_endpoint":                             abs(pathUserinfo),
		"jwks_uri":                                      abs(pathJWKS),
		"introspection_endpoint":                        abs(pathIntrospect),
		"revocation_endpoint":                           abs(pathRevoke),
		"end_session_endpoint":                          abs(pathEndSession),
		"scopes_supported":                              p.cfg.OIDC.Scopes(),
		"response_types_supported":                      []string{string(oidc.ResponseTypeCode)},
		"response_modes_supported":                      []string{string(oidc.ResponseModeQuery), string(oidc.ResponseModeFragment)},
		"grant_types_supported":                         grants,
		"subject_types_supported":                       subjects,
		"id_token_signing_alg_values_supported":         signing,
		"token_endpoint_auth_methods_supported":         []string{config.OIDCAuthBasic, config.OIDCAuthPost, config.OIDCAuthNone},
		"introspection_endpoint_auth_methods_supported": []string{config.OIDCAuthBasic},
		"revocation_endpoint_auth_methods_supported":    []string{config.OIDCAuthBasic, config.OIDCAuthPost, config.OIDCAuthNone},
		"code_challenge_methods_supported":              []string{string(oidc.CodeChallengeMethodS256)},
		"acr_values_supported":                          acrs,
		"claims_supported":                              claims,
		"claims_parameter_supported":                    false,
		"request_parameter_supported":                   false,
		"request_uri_parameter_supported":               false,
		"ui_locales_supported":                          []string{"ja", "en"},
		// Logout: end_session plus Back-/Front-Channel Logout 1.0, always
		// with sid (ID tokens of clients with a logout URI carry it).
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
		"frontchannel_logout_supported":         true,
		"frontchannel_logout_session_supported": true,
	}
	w.Header().Set("Content-Type", "application/json")
	// Metadata changes only with the configuration; a short cache is safe.
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(doc)
}
