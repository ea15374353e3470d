package oidcprovider_test

// Checks ported from the OpenID Foundation conformance suite's Basic and
// Config OP test plans (oidcc-basic-certification-test-plan,
// oidcc-config-certification-test-plan), each as a test against the real
// provider with an independent relying party library.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
)

func getJSON(t *testing.T, target string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func stringList(v any) []string {
	var out []string
	if list, ok := v.([]any); ok {
		for _, x := range list {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// TestDiscoveryAdvertisesReleasableClaims: claims the directory can never
// fill (groups with ldap.groups.mode none, name#ja with no Japanese name
// attribute) are configured but not advertised (issue 14, item 8).
func TestDiscoveryAdvertisesReleasableClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		c.LDAP.Groups.Mode = config.GroupsNone
		c.LDAP.Attributes.DisplayNameJA = ""
	})
	_, doc := getJSON(t, e.issuer+"/.well-known/openid-configuration")
	got := stringList(doc["claims_supported"])
	for _, no := range []string{"groups", "name#ja"} {
		if slices.Contains(got, no) {
			t.Errorf("claims_supported %q advertises %q, which is never released", got, no)
		}
	}
	for _, yes := range []string{"name", "email", "preferred_username", "eduperson_principal_name"} {
		if !slices.Contains(got, yes) {
			t.Errorf("claims_supported %q lacks %q", got, yes)
		}
	}
}

// oidcc-discovery-issuer-not-matching-config, oidcc-discovery-endpoint-verification,
// oidcc-server-rotate-keys precondition: the metadata and key set.
func TestDiscoveryDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rsaKeys)
	status, doc := getJSON(t, e.issuer+"/.well-known/openid-configuration")
	if status != http.StatusOK {
		t.Fatalf("discovery status %d", status)
	}
	if doc["issuer"] != e.issuer {
		t.Errorf("issuer = %v, want %s", doc["issuer"], e.issuer)
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
		"end_session_endpoint", "introspection_endpoint", "revocation_endpoint"} {
		v, _ := doc[k].(string)
		if !strings.HasPrefix(v, e.issuer+"/") {
			t.Errorf("%s = %q, not under the issuer", k, v)
		}
	}
	lists := []struct {
		key          string
		must, mustNo []string
	}{
		{"response_types_supported", []string{"code"}, []string{"token", "id_token", "code id_token", "id_token token"}},
		{"grant_types_supported", []string{"authorization_code", "refresh_token", "client_credentials"},
			[]string{"implicit", "password", "urn:ietf:params:oauth:grant-type:jwt-bearer"}},
		{"subject_types_supported", []string{"public", "pairwise"}, nil},
		{"id_token_signing_alg_values_supported", []string{"RS256"}, []string{"none"}},
		{"scopes_supported", []string{"openid", "offline_access", "profile", "email", "groups"}, nil},
		{"claims_supported", []string{"sub", "iss", "acr", "amr", "auth_time", "name", "name#ja", "email",
			"groups", "eduperson_principal_name", "eduperson_scoped_affiliation"}, nil},
		{"code_challenge_methods_supported", []string{"S256"}, []string{"plain"}},
		{"token_endpoint_auth_methods_supported", []string{"client_secret_basic", "client_secret_post", "none"}, []string{"private_key_jwt"}},
		{"acr_values_supported", []string{refedsMFA, passwordACR}, nil},
		{"response_modes_supported", []string{"query"}, []string{"form_post"}},
	}
	for _, l := range lists {
		got := stringList(doc[l.key])
		for _, m := range l.must {
			if !slices.Contains(got, m) {
				t.Errorf("%s %q lacks %q", l.key, got, m)
			}
		}
		for _, m := range l.mustNo {
			if slices.Contains(got, m) {
				t.Errorf("%s %q offers %q", l.key, got, m)
			}
		}
	}
	if doc["request_uri_parameter_supported"] != false || doc["request_parameter_supported"] != false {
		t.Errorf("request objects are advertised: %v %v", doc["request_parameter_supported"], doc["request_uri_parameter_supported"])
	}
	if _, ok := doc["device_authorization_endpoint"]; ok {
		t.Error("a device authorization endpoint is advertised")
	}

	jwksURI, _ := doc["jwks_uri"].(string)
	status, jwks := getJSON(t, jwksURI)
	keys, _ := jwks["keys"].([]any)
	if status != http.StatusOK || len(keys) == 0 {
		t.Fatalf("jwks status %d keys %v", status, jwks)
	}
	for _, k := range keys {
		key := k.(map[string]any)
		if key["kid"] == "" || key["kid"] == nil || key["use"] != "sig" || key["alg"] != "RS256" || key["kty"] != "RSA" {
			t.Errorf("published key %v", key)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, leaked := key[private]; leaked {
				t.Fatalf("the key set publishes private key material %q", private)
			}
		}
	}
	// go-oidc accepts the document (issuer check included).
	if _, err := gooidc.NewProvider(t.Context(), e.issuer); err != nil {
		t.Fatalf("go-oidc rejects the discovery document: %v", err)
	}
}

// oidcc-response-type-missing, oidcc-ensure-redirect-uri-in-authorization-request,
// oidcc-ensure-registered-redirect-uri, oidcc-ensure-request-object-with-redirect-uri,
// PKCE (RFC 7636) refusals, and the implicit and hybrid flows being unavailable.
func TestAuthorizationRequestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	b := e.browser()
	base := func() url.Values {
		f := web.start()
		u, _ := url.Parse(f.url)
		return u.Query()
	}
	tests := []struct {
		name      string
		mutate    func(url.Values)
		wantPage  bool   // an error page, never a redirect
		wantError string // the error sent to the redirect URI
	}{
		{"unregistered redirect_uri", func(q url.Values) { q.Set("redirect_uri", rpBase+"/evil/cb") }, true, ""},
		{"redirect_uri differing in a prefix", func(q url.Values) { q.Set("redirect_uri", rpBase+"/web/cb/more") }, true, ""},
		{"redirect_uri with an extra query", func(q url.Values) { q.Set("redirect_uri", rpBase+"/web/cb?x=1") }, true, ""},
		{"missing redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, true, ""},
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }, true, ""},
		{"missing client_id", func(q url.Values) { q.Del("client_id") }, true, ""},
		{"missing response_type", func(q url.Values) { q.Del("response_type") }, false, "invalid_request"},
		{"implicit token", func(q url.Values) { q.Set("response_type", "token") }, false, "unsupported_response_type"},
		{"implicit id_token", func(q url.Values) { q.Set("response_type", "id_token") }, false, "unsupported_response_type"},
		{"hybrid", func(q url.Values) { q.Set("response_type", "code id_token") }, false, "unsupported_response_type"},
		{"no openid scope", func(q url.Values) { q.Set("scope", "profile") }, false, "invalid_scope"},
		{"PKCE missing", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, false, "invalid_request"},
		{"PKCE plain", func(q url.Values) { q.Set("code_challenge_method", "plain") }, false, "invalid_request"},
		{"PKCE without method", func(q url.Values) { q.Del("code_challenge_method") }, false, "invalid_request"},
		{"request object", func(q url.Values) { q.Set("request", "eyJhbGciOiJub25lIn0.e30.") }, false, "request_not_supported"},
		{"request_uri", func(q url.Values) { q.Set("request_uri", "https://rp.example/req") }, false, "request_uri_not_supported"},
		{"form_post response mode", func(q url.Values) { q.Set("response_mode", "form_post") }, false, "invalid_request"},
		{"prompt none with login", func(q url.Values) { q.Set("prompt", "none login") }, false, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := base()
			state := q.Get("state")
			tt.mutate(q)
			p := b.Get("/authorize?" + q.Encode())
			if tt.wantPage {
				if p.Status != http.StatusBadRequest || p.Location != "" || !strings.Contains(p.Body, "The request is not valid") {
					t.Fatalf("want a 400 error page, got %d Location %q:\n%s", p.Status, p.Location, p.Body)
				}
				return
			}
			answer := web.answerAny(p)
			if answer.Get("error") != tt.wantError || answer.Get("code") != "" {
				t.Fatalf("answer %v, want error %s", answer, tt.wantError)
			}
			if answer.Get("state") != state {
				t.Errorf("state %q not returned (got %q)", state, answer.Get("state"))
			}
		})
	}

	t.Run("authorization request by POST", func(t *testing.T) {
		f := web.start()
		u, _ := url.Parse(f.url)
		p := b.Post("/authorize", u.Query())
		if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/authorize?") {
			t.Fatalf("POST /authorize: %d %q", p.Status, p.Location)
		}
		p = b.Follow(p)
		p = b.password(p, testldap.Alice)
		tok := web.mustExchange(web.codeFrom(p, f), f)
		web.verify(tok, f)
	})
}

// answerAny returns the query or fragment of the answer at the redirect URI.
func (r *rp) answerAny(p page) url.Values {
	r.t.Helper()
	if p.Status == http.StatusFound && strings.HasPrefix(p.Location, r.redirect+"#") {
		u, err := url.Parse(p.Location)
		if err != nil {
			r.t.Fatal(err)
		}
		q, _ := url.ParseQuery(u.Fragment)
		return q
	}
	return r.answer(p)
}

// oidcc-codereuse, oidcc-codereuse-30seconds: a code is single use, and a
// second use revokes the tokens of the first.
func TestCodeReuseRevokesTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.offlineRP()
	b := e.browser()
	f := web.start()
	code := web.codeFrom(b.password(b.Follow(b.Get(f.url)), testldap.Alice), f)
	tok := web.mustExchange(code, f)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	if status, _, _ := web.userinfo(http.MethodGet, tok.AccessToken, false); status != http.StatusOK {
		t.Fatalf("userinfo before the replay: %d", status)
	}
	// A replay that cannot authenticate as the client is refused and does
	// not count as a second use.
	bare := e.rp("web")
	bare.conf.ClientSecret = "not-the-secret"
	if _, err := bare.exchange(code, f); oauthError(err) != "invalid_client" {
		t.Fatalf("replay without the client secret: %v, want invalid_client", err)
	}
	if status, _, _ := web.userinfo(http.MethodGet, tok.AccessToken, false); status != http.StatusOK {
		t.Fatalf("an unauthenticated replay revoked the tokens: userinfo %d", status)
	}
	_, err := web.exchange(code, f)
	if oauthError(err) != "invalid_grant" {
		t.Fatalf("second redemption: %v, want invalid_grant", err)
	}
	if status, _, h := web.userinfo(http.MethodGet, tok.AccessToken, false); status != http.StatusUnauthorized ||
		!strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("access token of a replayed code still works: %d", status)
	}
	_, err = web.refresh(tok.RefreshToken)
	if oauthError(err) != "invalid_grant" {
		t.Errorf("refresh token of a replayed code: %v, want invalid_grant", err)
	}
}

// A code expires after code_lifetime.
func TestCodeExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	b := e.browser()
	f := web.start()
	code := web.codeFrom(b.password(b.Follow(b.Get(f.url)), testldap.Alice), f)
	e.clock.Advance(e.cfg.OIDC.CodeLifetime)
	if _, err := web.exchange(code, f); oauthError(err) != "invalid_grant" {
		t.Fatalf("expired code: %v, want invalid_grant", err)
	}
}

// oidcc-prompt-none-not-logged-in, oidcc-prompt-none-logged-in.
func TestPromptNone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	b := e.browser()
	none := oauth2.SetAuthURLParam("prompt", "none")

	f := web.start(none)
	q := web.answer(b.Get(f.url))
	if q.Get("error") != "login_required" || q.Get("state") != f.state {
		t.Fatalf("prompt=none without a session: %v", q)
	}

	first, _ := b.login(web, testldap.Alice)
	_, c1 := web.verify(first, nil)
	f = web.start(none)
	p := b.Get(f.url)
	if p.Status != http.StatusFound {
		t.Fatalf("prompt=none with a session: status %d, want a direct redirect", p.Status)
	}
	tok := web.mustExchange(web.codeFrom(p, f), f)
	idt, c2 := web.verify(tok, f)
	if idt.Subject != testldap.Alice.ID || c2.AuthTime != c1.AuthTime {
		t.Fatalf("silent login: sub %q auth_time %d, want alice and the original %d", idt.Subject, c2.AuthTime, c1.AuthTime)
	}

	// oidcc-id-token-hint: with the signed-in user's own ID token as hint
	// the answer is silent; another user's is refused.
	hint := oauth2.SetAuthURLParam("id_token_hint", first.Extra("id_token").(string))
	f = web.start(none, hint)
	if q := web.answer(b.Get(f.url)); q.Get("code") == "" {
		t.Fatalf("prompt=none with the user's own id_token_hint: %v", q)
	}
	other := e.browser()
	other.login(web, testldap.Bob)
	f = web.start(none, hint)
	if q := web.answer(other.Get(f.url)); q.Get("error") != "login_required" {
		t.Fatalf("prompt=none with another user's id_token_hint: %v", q)
	}
}

// oidcc-prompt-login: a session does not spare the password.
func TestPromptLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	b := e.browser()
	first, _ := b.login(web, testldap.Alice)
	_, c1 := web.verify(first, nil)

	// Without prompt, the session answers (SSO) without a page.
	f := web.start()
	if p := b.Get(f.url); p.Status != http.StatusFound || !strings.HasPrefix(p.Location, web.redirect) {
		t.Fatalf("SSO: status %d Location %q", p.Status, p.Location)
	}

	c2 := b.loginAgain(web, testldap.Alice, 3*time.Second, "prompt=login", oauth2.SetAuthURLParam("prompt", "login"))
	if c2.AuthTime < c1.AuthTime+3 {
		t.Fatalf("auth_time %d after prompt=login, want the new login (first was %d)", c2.AuthTime, c1.AuthTime)
	}
}

// oidcc-max-age-1, oidcc-max-age-10000.
func TestMaxAge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	b := e.browser()
	first, _ := b.login(web, testldap.Alice)
	_, c1 := web.verify(first, nil)

	f := web.start(oauth2.SetAuthURLParam("max_age", "10000"))
	if p := b.Get(f.url); p.Status != http.StatusFound {
		t.Fatalf("max_age=10000 with a fresh login: status %d, want SSO", p.Status)
	}

	c2 := b.loginAgain(web, testldap.Alice, 2*time.Second, "max_age=1 two seconds after the login", oauth2.SetAuthURLParam("max_age", "1"))
	if c2.AuthTime < c1.AuthTime+2 {
		t.Fatalf("auth_time %d, want a new login after %d", c2.AuthTime, c1.AuthTime)
	}
}

// oidcc-userinfo-get, oidcc-userinfo-post-header, oidcc-userinfo-post-body.
func TestUserinfo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	tok, _ := e.browser().login(web, testldap.Bob)
	idt, _ := web.verify(tok, nil)
	tests := []struct {
		name   string
		method string
		inForm bool
	}{
		{"GET with the header", http.MethodGet, false},
		{"POST with the header", http.MethodPost, false},
		{"POST with the token in the body", http.MethodPost, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, claims, h := web.userinfo(tt.method, tok.AccessToken, tt.inForm)
			if status != http.StatusOK || claims["sub"] != idt.Subject || claims["email"] != testldap.Bob.Mail {
				t.Fatalf("userinfo %d %v", status, claims)
			}
			if h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", h.Get("Cache-Control"))
			}
		})
	}
	t.Run("invalid token", func(t *testing.T) {
		for _, bad := range []string{"not-a-token", tok.AccessToken + "x"} {
			status, _, h := web.userinfo(http.MethodGet, bad, false)
			if status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("token %q: status %d WWW-Authenticate %q", bad, status, h.Get("WWW-Authenticate"))
			}
		}
	})
	t.Run("no token", func(t *testing.T) {
		resp, err := http.Get(web.provider.UserInfoEndpoint())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("status %d WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("disabled account", func(t *testing.T) {
		e.ldap.Modify(t, "dn: "+testldap.Bob.DN+"\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n")
		if status, _, _ := web.userinfo(http.MethodGet, tok.AccessToken, false); status != http.StatusUnauthorized {
			t.Fatalf("userinfo for a disabled account: %d", status)
		}
	})
}

// oidcc-refresh-token: a refresh token yields new tokens for the same
// subject and is replaced; a replayed one revokes the whole chain.
func TestRefreshRotationAndReplay(t *testing.T) {
	t.Parallel()
	e, web, first := offlineLogin(t)
	idt1, c1 := web.verify(first, nil)

	second, err := web.refresh(first.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("refresh did not rotate the tokens")
	}
	idt2, c2 := web.verify(second, nil)
	if idt2.Subject != idt1.Subject || c2.AuthTime != c1.AuthTime || c2.ACR != c1.ACR || !slices.Equal(c2.AMR, c1.AMR) {
		t.Fatalf("refreshed ID token: sub %q auth_time %d acr %q amr %q; first %q %d %q %q",
			idt2.Subject, c2.AuthTime, c2.ACR, c2.AMR, idt1.Subject, c1.AuthTime, c1.ACR, c1.AMR)
	}
	if status, _, _ := web.userinfo(http.MethodGet, second.AccessToken, false); status != http.StatusOK {
		t.Fatalf("new access token: userinfo %d", status)
	}
	// One code, then two answers of each token kind.
	for kind, want := range map[string]string{"authorization_code": "1", "access_token": "2", "refresh_token": "2", "id_token": "2"} {
		if got := e.tokensIssued(kind); got != want {
			t.Errorf("idp_tokens_issued_total{kind=%q} = %q, want %s", kind, got, want)
		}
	}

	// Replaying the first refresh token revokes everything of the login.
	if _, err := web.refresh(first.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Fatalf("replayed refresh token: %v, want invalid_grant", err)
	}
	if _, err := web.refresh(second.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("the chain's current refresh token survived the replay: %v", err)
	}
	for _, at := range []string{first.AccessToken, second.AccessToken} {
		if status, _, _ := web.userinfo(http.MethodGet, at, false); status != http.StatusUnauthorized {
			t.Errorf("an access token of the revoked chain still works: %d", status)
		}
	}
}

// A chain of refresh tokens ends at the absolute lifetime however often it
// is used; an unused refresh token ends at its own lifetime.
func TestRefreshLifetimes(t *testing.T) {
	t.Parallel()
	e, web, tok := offlineLogin(t)
	rt := tok.RefreshToken
	step := e.cfg.OIDC.RefreshTokenLifetime - time.Hour
	used := time.Duration(0)
	for used+step < e.cfg.OIDC.RefreshTokenAbsoluteLifetime {
		e.clock.Advance(step)
		used += step
		next, err := web.refresh(rt)
		if err != nil {
			t.Fatalf("refresh after %v: %v", used, err)
		}
		rt = next.RefreshToken
	}
	e.clock.Advance(e.cfg.OIDC.RefreshTokenAbsoluteLifetime - used)
	if _, err := web.refresh(rt); oauthError(err) != "invalid_grant" {
		t.Fatalf("refresh past the absolute lifetime: %v, want invalid_grant", err)
	}

	tok, _ = e.browser().login(web, testldap.Bob)
	e.clock.Advance(e.cfg.OIDC.RefreshTokenLifetime)
	if _, err := web.refresh(tok.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Fatalf("refresh token unused for its lifetime: %v, want invalid_grant", err)
	}
}

// oidcc-client-secret-basic, oidcc-client-secret-post (client
// authentication at the token endpoint), and a public client with PKCE.
func TestClientAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	b.login(e.rp("web"), testldap.Alice) // the session the clients below share
	tests := []struct {
		name    string
		client  string
		mutate  func(*rp)
		wantErr string
	}{
		{"client_secret_basic", "web", nil, ""},
		{"client_secret_post with a bcrypt hash", "post", nil, ""},
		{"public client with PKCE only", "spa", nil, ""},
		// A client that does not pin a method may use either (issue 14, item 10).
		{"unpinned client sending the secret in the form", "web", func(r *rp) { r.conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams }, ""},
		{"post client sending basic", "post", func(r *rp) { r.conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader }, "invalid_client"},
		{"wrong secret", "web", func(r *rp) { r.conf.ClientSecret = webSecret + "x" }, "invalid_client"},
		{"public client sending a secret", "spa", func(r *rp) { r.conf.ClientSecret = "guess" }, "invalid_client"},
		{"confidential client without a secret", "web", func(r *rp) {
			r.conf.ClientSecret = ""
			r.conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		}, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.rp(tt.client)
			r.conf.Scopes = []string{"openid", "profile"}
			f := r.start()
			code := r.codeFrom(b.Get(f.url), f)
			if tt.mutate != nil {
				tt.mutate(r)
			}
			tok, err := r.exchange(code, f)
			if tt.wantErr != "" {
				if oauthError(err) != tt.wantErr {
					t.Fatalf("exchange: %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if idt, _ := r.verify(tok, f); idt.Subject != testldap.Alice.ID {
				t.Fatalf("sub %q", idt.Subject)
			}
		})
	}
}

// oidcc-ensure-code-is-bound-to-client: another client cannot redeem a code,
// even with the right redirect_uri and verifier.
func TestCodeBoundToClientAndRedirectURI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web, post := e.rp("web"), e.rp("post")
	b := e.browser()
	b.login(web, testldap.Alice)

	f := web.start()
	code := web.codeFrom(b.Get(f.url), f)
	post.conf.RedirectURL = web.redirect
	if _, err := post.exchange(code, f); oauthError(err) != "invalid_grant" {
		t.Fatalf("another client redeemed the code: %v", err)
	}
	// The refused attempt did not use the code up.
	web.verify(web.mustExchange(code, f), f)

	f = web.start()
	code = web.codeFrom(b.Get(f.url), f)
	web.conf.RedirectURL = rpBase + "/web/other"
	if _, err := web.exchange(code, f); oauthError(err) != "invalid_grant" {
		t.Fatalf("code redeemed with another redirect_uri: %v", err)
	}
}

// PKCE: the verifier must match the challenge.
func TestPKCEVerifier(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	b := e.browser()
	b.login(web, testldap.Alice)
	tests := []struct {
		name     string
		verifier string
	}{
		{"wrong verifier", oauth2.GenerateVerifier()},
		{"no verifier", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := web.start()
			code := web.codeFrom(b.Get(f.url), f)
			var opts []oauth2.AuthCodeOption
			if tt.verifier != "" {
				opts = append(opts, oauth2.VerifierOption(tt.verifier))
			}
			_, err := web.conf.Exchange(t.Context(), code, opts...)
			if got := oauthError(err); got != "invalid_grant" && got != "invalid_request" {
				t.Fatalf("exchange with %s: %v", tt.name, err)
			}
			// Proving less than the client can did not use the code up.
			web.verify(web.mustExchange(code, f), f)
		})
	}
}

// Only the authorization code, refresh token and client credentials grants
// exist at the token endpoint.
func TestUnsupportedGrants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	tests := []struct {
		grant string
		extra url.Values
		want  string
	}{
		{"password", url.Values{"username": {testldap.Alice.ID}, "password": {testldap.Alice.Password}}, "unsupported_grant_type"},
		{"implicit", nil, "unsupported_grant_type"},
		{"urn:ietf:params:oauth:grant-type:jwt-bearer", url.Values{"assertion": {"x.y.z"}}, "unsupported_grant_type"},
		{"urn:ietf:params:oauth:grant-type:token-exchange", url.Values{"subject_token": {"x"}}, "unsupported_grant_type"},
		{"urn:ietf:params:oauth:grant-type:device_code", url.Values{"device_code": {"x"}}, "unsupported_grant_type"},
		{"", nil, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.grant, func(t *testing.T) {
			form := url.Values{"grant_type": {tt.grant}}
			for k, v := range tt.extra {
				form[k] = v
			}
			status, out := web.postForm("/oauth/token", form)
			if status != http.StatusBadRequest || out["error"] != tt.want {
				t.Fatalf("grant %q: %d %v, want %s", tt.grant, status, out, tt.want)
			}
		})
	}
}
