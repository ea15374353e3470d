package oidcprovider_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
)

// perClientAlgs registers an ES256 and an EdDSA client (with JWT access
// tokens and a logout URI) beside the others, which sign with the default
// RS256.
func perClientAlgs(c *config.Config) {
	c.OIDC.Keys.Algorithm = config.OIDCAlgRS256
	for _, a := range []struct{ id, alg string }{{"es", config.OIDCAlgES256}, {"ed", config.OIDCAlgEdDSA}} {
		c.OIDC.Clients = append(c.OIDC.Clients, config.OIDCClient{ID: a.id, Name: a.id, Secret: config.SecretValue(webSecret),
			RedirectURIs: []string{rpBase + "/" + a.id + "/cb"}, PostLogoutRedirectURIs: []string{rpBase + "/" + a.id + "/bye"},
			AccessTokenFormat: config.OIDCTokenJWT, IDTokenSignedResponseAlg: a.alg})
	}
}

// headerAlg returns the alg and kid of a JWS.
func headerAlg(t *testing.T, raw string) (alg, kid string) {
	t.Helper()
	sig, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	h := sig.Signatures[0].Header
	return h.Algorithm, h.KeyID
}

// TestPerClientSigningAlgorithms: each client's ID tokens are signed with
// its id_token_signed_response_alg and verify against the JWKS with that
// algorithm pinned (and only with it); discovery and the key set list
// every algorithm in use; a rotation keeps each algorithm's old key
// published; JWT access tokens and id_token_hint of the EdDSA client are
// accepted by the provider's own checks.
func TestPerClientSigningAlgorithms(t *testing.T) {
	t.Parallel()
	e := newEnv(t, perClientAlgs)

	_, doc := getJSON(t, e.issuer+"/.well-known/openid-configuration")
	if got, want := doc["id_token_signing_alg_values_supported"], []any{"RS256", "ES256", "EdDSA"}; !slices.Equal(got.([]any), want) {
		t.Errorf("id_token_signing_alg_values_supported = %v, want %v", got, want)
	}
	_, jwks := getJSON(t, e.issuer+"/.well-known/jwks.json")
	kty := map[string]string{}
	for _, k := range jwks["keys"].([]any) {
		m := k.(map[string]any)
		kty[m["alg"].(string)] = m["kty"].(string)
	}
	if want := map[string]string{"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}; len(kty) != 3 || kty["RS256"] != "RSA" || kty["ES256"] != "EC" || kty["EdDSA"] != "OKP" {
		t.Errorf("key set algorithms %v, want %v", kty, want)
	}

	tokens := map[string]string{} // client -> raw ID token
	for _, c := range []struct{ id, alg string }{{"web", "RS256"}, {"es", "ES256"}, {"ed", "EdDSA"}} {
		r := e.rp(c.id)
		tok, f := e.browser().login(r, testldap.Alice)
		raw := tok.Extra("id_token").(string)
		if alg, _ := headerAlg(t, raw); alg != c.alg {
			t.Fatalf("%s: ID token signed with %s, want %s", c.id, alg, c.alg)
		}
		idt, err := r.provider.Verifier(&gooidc.Config{ClientID: c.id, SupportedSigningAlgs: []string{c.alg}}).Verify(t.Context(), raw)
		if err != nil || idt.Nonce != f.nonce || idt.Subject != "alice" {
			t.Fatalf("%s: verification with %s pinned: %v", c.id, c.alg, err)
		}
		other := "RS256"
		if c.alg == "RS256" {
			other = "ES256"
		}
		if _, err := r.provider.Verifier(&gooidc.Config{ClientID: c.id, SupportedSigningAlgs: []string{other}}).Verify(t.Context(), raw); err == nil {
			t.Errorf("%s: the %s token verified with only %s allowed", c.id, c.alg, other)
		}
		tokens[c.id] = raw
		if c.id == "ed" {
			// The JWT access token carries the client's algorithm and
			// userinfo accepts it.
			if alg, _ := headerAlg(t, tok.AccessToken); alg != "EdDSA" {
				t.Errorf("JWT access token signed with %s, want EdDSA", alg)
			}
			if status, info, _ := r.userinfo(http.MethodGet, tok.AccessToken, false); status != http.StatusOK || info["sub"] != "alice" {
				t.Errorf("userinfo with an EdDSA access token: %d %v", status, info)
			}
		}
	}

	// Rotation: every algorithm's key is replaced, the old ones stay
	// published and their tokens verify.
	e.clock.Advance(e.cfg.OIDC.Keys.RotationPeriod + time.Minute)
	es := e.rp("es")
	fresh, _ := e.browser().login(es, testldap.Alice)
	_, oldKid := headerAlg(t, tokens["es"])
	alg, newKid := headerAlg(t, fresh.Extra("id_token").(string))
	if alg != "ES256" || newKid == oldKid {
		t.Fatalf("after the rotation period: %s key %s (before: %s)", alg, newKid, oldKid)
	}
	if kids := jwksKids(t, e); len(kids) != 6 || !slices.Contains(kids, oldKid) || !slices.Contains(kids, newKid) {
		t.Fatalf("key set after rotation %q: want 6 keys (old and new of 3 algorithms)", kids)
	}
	for id, raw := range tokens {
		_, kid := headerAlg(t, raw)
		if !slices.Contains(jwksKids(t, e), kid) {
			t.Errorf("%s: the old key %s left the key set", id, kid)
		}
		a, _ := headerAlg(t, raw)
		if _, err := e.rp(id).provider.Verifier(&gooidc.Config{ClientID: id, SupportedSigningAlgs: []string{a}}).Verify(t.Context(), raw); err != nil {
			t.Errorf("%s: token of the old key after rotation: %v", id, err)
		}
	}

	// The provider's own check of an EdDSA id_token_hint (logout).
	b := e.browser()
	ed := e.rp("ed")
	tok, _ := b.login(ed, testldap.Alice)
	q := url.Values{"id_token_hint": {tok.Extra("id_token").(string)}, "post_logout_redirect_uri": {rpBase + "/ed/bye"}}
	if p := b.Get("/end_session?" + q.Encode()); p.Status != http.StatusFound || p.Location != rpBase+"/ed/bye" {
		t.Errorf("logout with an EdDSA id_token_hint: %d %q", p.Status, p.Location)
	}
	f := ed.start(oauth2.SetAuthURLParam("prompt", "none"))
	if q := ed.answer(b.Get(f.url)); q.Get("error") != "login_required" {
		t.Errorf("the session outlived the logout: %v", q)
	}
}
