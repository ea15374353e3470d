package oidcprovider_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp/oidcprovider"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/store"
)

func kidOf(t *testing.T, rawJWT string) string {
	t.Helper()
	sig, err := jose.ParseSigned(rawJWT, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return sig.Signatures[0].Header.KeyID
}

func jwksKids(t *testing.T, e *env) []string {
	t.Helper()
	_, jwks := getJSON(t, e.issuer+"/.well-known/jwks.json")
	var kids []string
	for _, k := range jwks["keys"].([]any) {
		kids = append(kids, k.(map[string]any)["kid"].(string))
	}
	return kids
}

// The signing key rotates on schedule; tokens signed by the previous key
// stay verifiable while they live, and the old key leaves the key set
// once they have expired.
func TestKeyRotationKeepsOldTokensVerifiable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	old, _ := e.browser().login(web, testldap.Alice)
	oldRaw := old.Extra("id_token").(string)
	oldKid := kidOf(t, oldRaw)

	e.clock.Advance(e.cfg.OIDC.Keys.RotationPeriod + time.Minute)
	fresh, _ := e.browser().login(web, testldap.Alice)
	newRaw := fresh.Extra("id_token").(string)
	newKid := kidOf(t, newRaw)
	if newKid == oldKid {
		t.Fatalf("the key %s was not rotated after the rotation period", oldKid)
	}
	if kids := jwksKids(t, e); !slices.Contains(kids, oldKid) || !slices.Contains(kids, newKid) {
		t.Fatalf("key set %q, want the old %s and the new %s", kids, oldKid, newKid)
	}
	// A relying party that fetches the key set now verifies both.
	rp := e.rp("web")
	verifier := rp.provider.Verifier(&gooidc.Config{ClientID: "web"})
	for name, raw := range map[string]string{"old": oldRaw, "new": newRaw} {
		if _, err := verifier.Verify(t.Context(), raw); err != nil {
			t.Errorf("%s token: %v", name, err)
		}
	}

	// Once every token of the old key has expired, the key is withdrawn.
	e.clock.Advance(max(e.cfg.OIDC.IDTokenLifetime, e.cfg.OIDC.AccessTokenLifetime) + 2*time.Hour)
	if kids := jwksKids(t, e); slices.Contains(kids, oldKid) {
		t.Fatalf("retired key %s still published: %q", oldKid, kids)
	}
}

// The key survives restarts: a second provider on the same store signs
// with the same key.
func TestSigningKeyKeptInStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := jwksKids(t, e)
	again, err := oidcprovider.New(context.Background(), oidcprovider.Options{Config: e.cfg, Store: e.db,
		Directory: nil, Now: e.clock.Now})
	if err == nil || again != nil {
		t.Fatal("New accepted options without an app")
	}
	dir := directoryFor(t, e)
	again, err = oidcprovider.New(context.Background(), oidcprovider.Options{Config: e.cfg, App: e.app, Store: e.db,
		Directory: dir, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := e.db.ListOIDCSigningKeys(context.Background(), e.clock.Now())
	if err != nil || len(keys) != 1 || keys[0].ID != before[0] {
		t.Fatalf("after a second start keys = %+v (%v), want only %q", keys, err, before)
	}
	if strings.Contains(string(keys[0].PrivateKey), "BEGIN") || len(keys[0].PrivateKey) < 100 {
		t.Fatal("the private key is not sealed in the store")
	}
	if again.Issuer() != e.issuer {
		t.Errorf("Issuer() = %q", again.Issuer())
	}
}

// RFC 7662 introspection for the token's own client, and RFC 7009
// revocation of access and refresh tokens.
func TestIntrospectionAndRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web, post := e.offlineRP(), e.rp("post")
	tok, _ := e.browser().login(web, testldap.Alice)

	status, out := web.postForm("/oauth/introspect", url.Values{"token": {tok.AccessToken}})
	if status != http.StatusOK || out["active"] != true || out["client_id"] != "web" || out["sub"] != testldap.Alice.ID ||
		!strings.Contains(out["scope"].(string), "openid") {
		t.Fatalf("introspection of a live token: %d %v", status, out)
	}
	// Another client learns nothing about it.
	post.conf.ClientSecret = postSecret
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/introspect",
		strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("post", postSecret)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		var o map[string]any
		decodeJSON(t, resp, &o)
		if o["active"] != false || o["sub"] != nil {
			t.Errorf("another client introspected the token: %v", o)
		}
	}
	if status := e.postNoAuth("/oauth/introspect", url.Values{"token": {tok.AccessToken}}); status != http.StatusUnauthorized {
		t.Errorf("introspection without client authentication: %d", status)
	}

	// Revoking the access token ends it; the refresh token lives on.
	if status, out := web.postForm("/oauth/revoke", url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}); status != http.StatusOK {
		t.Fatalf("revocation: %d %v", status, out)
	}
	if _, out := web.postForm("/oauth/introspect", url.Values{"token": {tok.AccessToken}}); out["active"] != false {
		t.Fatalf("revoked token still active: %v", out)
	}
	next, err := web.refresh(tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after revoking the access token: %v", err)
	}
	// Revoking the refresh token ends the grant, access tokens included.
	if status, _ := web.postForm("/oauth/revoke", url.Values{"token": {next.RefreshToken}}); status != http.StatusOK {
		t.Fatalf("refresh token revocation: %d", status)
	}
	if _, out := web.postForm("/oauth/introspect", url.Values{"token": {next.AccessToken}}); out["active"] != false {
		t.Errorf("access token of a revoked refresh token still active: %v", out)
	}
	if _, err := web.refresh(next.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("revoked refresh token: %v", err)
	}
	// Unknown tokens are no error (RFC 7009 section 2.2).
	if status, _ := web.postForm("/oauth/revoke", url.Values{"token": {"no-such-token"}}); status != http.StatusOK {
		t.Errorf("revoking an unknown token: %d", status)
	}
}

func (e *env) postNoAuth(endpoint string, form url.Values) int {
	e.t.Helper()
	resp, err := http.PostForm(e.issuer+endpoint, form)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The client credentials grant for a registered machine client only.
func TestClientCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	machine := e.rp("machine")
	cc := clientcredentials.Config{ClientID: "machine", ClientSecret: robotSecret, TokenURL: machine.provider.Endpoint().TokenURL,
		Scopes: []string{"groups", "openid", "profile"}, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	if tok.RefreshToken != "" || tok.Extra("id_token") != nil {
		t.Error("client credentials returned a refresh or ID token")
	}
	status, out := machine.postForm("/oauth/introspect", url.Values{"token": {tok.AccessToken}})
	if status != http.StatusOK || out["active"] != true || out["scope"] != "groups" || out["sub"] != "machine" {
		t.Fatalf("introspection of a machine token: %v", out)
	}
	if status, _, _ := machine.userinfo(http.MethodGet, tok.AccessToken, false); status != http.StatusUnauthorized {
		t.Errorf("userinfo with a machine token: %d", status)
	}
	web := e.rp("web")
	cc = clientcredentials.Config{ClientID: "web", ClientSecret: webSecret, TokenURL: web.provider.Endpoint().TokenURL,
		AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := cc.Token(t.Context()); oauthError(err) != "unauthorized_client" {
		t.Errorf("client credentials for a client without the grant: %v", err)
	}
	cc = clientcredentials.Config{ClientID: "machine", ClientSecret: "wrong", TokenURL: web.provider.Endpoint().TokenURL,
		AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := cc.Token(t.Context()); oauthError(err) != "invalid_client" {
		t.Errorf("client credentials with a wrong secret: %v", err)
	}
}

// Pairwise clients see a subject of their own that other clients cannot
// link; access tokens in JWT form verify against the published keys.
func TestSubjectsAndJWTAccessTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	web, pairwise, jwt := e.rp("web"), e.rp("pairwise"), e.rp("jwt")
	pairwise.conf.Scopes = []string{"openid"}
	jwt.conf.Scopes = []string{"openid", "groups"}
	public, _ := b.login(web, testldap.Alice)
	pub, _ := web.verify(public, nil)
	pw, _ := b.login(pairwise, testldap.Alice)
	pid, _ := pairwise.verify(pw, nil)
	if pid.Subject == pub.Subject || pid.Subject == testldap.Alice.ID || len(pid.Subject) < 40 {
		t.Fatalf("pairwise sub %q (public %q)", pid.Subject, pub.Subject)
	}
	again, _ := e.browser().login(pairwise, testldap.Alice)
	if pid2, _ := pairwise.verify(again, nil); pid2.Subject != pid.Subject {
		t.Fatalf("pairwise sub is not stable: %q then %q", pid.Subject, pid2.Subject)
	}
	if status, info, _ := pairwise.userinfo(http.MethodGet, pw.AccessToken, false); status != http.StatusOK || info["sub"] != pid.Subject {
		t.Fatalf("pairwise userinfo sub %v, want %q", info["sub"], pid.Subject)
	}

	tok, _ := b.login(jwt, testldap.Alice)
	keySet := gooidc.NewRemoteKeySet(t.Context(), e.issuer+"/.well-known/jwks.json")
	payload, err := keySet.VerifySignature(t.Context(), tok.AccessToken)
	if err != nil {
		t.Fatalf("JWT access token signature: %v", err)
	}
	for _, want := range []string{`"sub":"alice"`, `"client_id":"jwt"`, `"scope":"openid groups"`, `"acr":"` + passwordACR + `"`} {
		if !strings.Contains(string(payload), want) {
			t.Errorf("access token claims %s lack %s", payload, want)
		}
	}
	if status, info, _ := jwt.userinfo(http.MethodGet, tok.AccessToken, false); status != http.StatusOK || info["sub"] != "alice" {
		t.Fatalf("userinfo with a JWT access token: %d %v", status, info)
	}
}

// A subject taken from a directory attribute (entryUUID: stable across
// renames) instead of the login ID.
func TestSubjectFromAttribute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) { c.OIDC.SubjectAttribute = "entryUUID" })
	web := e.rp("web")
	tok, _ := e.browser().login(web, testldap.Alice)
	idt, _ := web.verify(tok, nil)
	if len(idt.Subject) != 36 || strings.Count(idt.Subject, "-") != 4 {
		t.Fatalf("sub %q is not the entryUUID", idt.Subject)
	}
	if status, info, _ := web.userinfo(http.MethodGet, tok.AccessToken, false); status != http.StatusOK || info["sub"] != idt.Subject {
		t.Fatalf("userinfo sub %v, want %q", info["sub"], idt.Subject)
	}
}

// RP-initiated logout ends the IdP session and returns only to a
// registered post-logout URI.
func TestEndSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	b := e.browser()
	tok, _ := b.login(web, testldap.Alice)
	rawID := tok.Extra("id_token").(string)

	bad := url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {rpBase + "/evil"}}
	if p := b.Get("/end_session?" + bad.Encode()); p.Status == http.StatusFound {
		t.Fatalf("logout redirected to an unregistered URI: %q", p.Location)
	}
	// The session survived the refused request.
	f := web.start(oauth2.SetAuthURLParam("prompt", "none"))
	if q := web.answer(b.Get(f.url)); q.Get("code") == "" {
		t.Fatalf("session lost by a refused logout: %v", q)
	}

	good := url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {rpBase + "/web/bye"}, "state": {"s1"}}
	p := b.Get("/end_session?" + good.Encode())
	if p.Status != http.StatusFound || p.Location != rpBase+"/web/bye?state=s1" {
		t.Fatalf("logout: %d %q", p.Status, p.Location)
	}
	f = web.start(oauth2.SetAuthURLParam("prompt", "none"))
	if q := web.answer(b.Get(f.url)); q.Get("error") != "login_required" {
		t.Fatalf("the IdP session outlived the logout: %v", q)
	}

	// Without a hint, the browser is asked first; confirming ends the
	// session and lands on the IdP's own logged-out page, which lists the
	// application (it has no logout URI, so it may still be signed in).
	b.login(web, testldap.Alice)
	p = b.Post("/end_session", url.Values{})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("POST end_session: %d", p.Status)
	}
	p = b.Follow(p)
	if !strings.Contains(p.Body, "Stay signed in") {
		t.Fatalf("logout without a hint did not ask: %d\n%s", p.Status, p.Body)
	}
	if !strings.Contains(p.Body, "Web portal") {
		t.Errorf("the confirmation does not list the application:\n%s", p.Body)
	}
	p = b.Post("/logout", url.Values{"csrf_token": {p.Hidden(t, "csrf_token")}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/logout/done?id=") {
		t.Fatalf("confirmed logout: %d %q", p.Status, p.Location)
	}
	if done := b.Follow(p); !strings.Contains(done.Body, "Web portal") || !strings.Contains(done.Body, "Does not support logout") {
		t.Errorf("the results do not list the application as possibly signed in:\n%s", done.Body)
	}
	f = web.start(oauth2.SetAuthURLParam("prompt", "none"))
	if q := web.answer(b.Get(f.url)); q.Get("error") != "login_required" {
		t.Fatalf("the IdP session outlived the confirmed logout: %v", q)
	}
}

// TestEndSessionWithoutHintEndsNothing: a logout link any site can plant
// (no id_token_hint) ends nothing by itself; the user's confirmation,
// posted with the form token, does, and only then goes to the client's
// registered URI.
func TestEndSessionWithoutHintEndsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	b := e.browser()
	b.login(web, testldap.Alice)
	stillIn := func() bool {
		f := web.start(oauth2.SetAuthURLParam("prompt", "none"))
		return web.answer(b.Get(f.url)).Get("code") != ""
	}
	forced := url.Values{"client_id": {"web"}, "post_logout_redirect_uri": {rpBase + "/web/bye"}, "state": {"s2"}}
	p := b.Follow(b.Get("/end_session?" + forced.Encode()))
	if !stillIn() {
		t.Fatal("GET end_session without id_token_hint ended the session")
	}
	if !strings.Contains(p.Body, "ログインしたままにする") || !strings.Contains(p.Body, `action="/logout"`) {
		t.Fatalf("no bilingual confirmation page: %d\n%s", p.Status, p.Body)
	}
	// A forged confirmation (no form token) is refused.
	if q := b.Post("/logout", url.Values{}); q.Status != http.StatusForbidden || !stillIn() {
		t.Fatalf("logout without the form token: %d", q.Status)
	}
	p = b.Follow(b.Get("/end_session?" + forced.Encode()))
	p = b.Post("/logout", url.Values{"csrf_token": {p.Hidden(t, "csrf_token")}})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, rpBase+"/web/bye?state=s2") {
		t.Fatalf("confirmed logout did not continue to the client: %d\n%s", p.Status, p.Body)
	}
	if stillIn() {
		t.Fatal("the session outlived the confirmed logout")
	}
	events, err := e.db.ListAudit(context.Background(), store.AuditFilter{Subject: testldap.Alice.ID, Type: "logout"})
	if err != nil || len(events) != 1 || events[0].Detail["via"] != "protocol_confirmed" {
		t.Errorf("logout audit: %+v (%v)", events, err)
	}
}

// TestEndingUserSessionsRevokesRefreshTokens: when helpdesk staff end all of
// a user's sessions, the relying parties' refresh tokens end with them.
func TestEndingUserSessionsRevokesRefreshTokens(t *testing.T) {
	t.Parallel()
	e, web, tok := offlineLogin(t)
	if _, err := web.refresh(tok.RefreshToken); err != nil {
		t.Fatalf("refresh before: %v", err)
	}
	tok, _ = e.browser().login(web, testldap.Alice)
	ended, err := e.app.EndUserSessions(t.Context(), "helpdesk1", testldap.Alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ended.Grants == 0 {
		t.Errorf("no grant revoked: %+v", ended)
	}
	if _, err := web.refresh(tok.RefreshToken); err == nil {
		t.Fatal("a refresh token outlived the end of the user's sessions")
	}
}
