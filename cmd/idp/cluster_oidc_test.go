package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testpg"
	"github.com/campusidp/campusidp/internal/testsmtp"
	"github.com/campusidp/campusidp/store"
)

const (
	rpClientID     = "portal"
	rpClientSecret = "portal-client-secret-0123456789abcdef"
	rpRedirect     = "http://127.0.0.1:9/portal/callback" // never contacted: the test reads the code off the redirect
)

func withOIDCClient(c *config.Config) {
	c.OIDC.Clients = []config.OIDCClient{{
		ID: rpClientID, Name: "Campus portal", Secret: config.SecretValue(rpClientSecret),
		RedirectURIs: []string{rpRedirect},
		Scopes:       []string{"openid", "profile", "email", "offline_access"},
	}}
	// ES256 keys are made in microseconds; the default RSA key would
	// dominate the run under the race detector.
	c.OIDC.Keys.Algorithm = config.OIDCAlgES256
}

var metaRefreshRe = regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]+)">`)

// toRP follows the IdP's pages until the browser is sent to the relying
// party (by a redirect or by the meta-refresh page) and returns that URL.
func (b *browser) toRP(p page) *url.URL {
	b.t.Helper()
	for range 20 {
		target := ""
		switch {
		case p.Status >= 300 && p.Status < 400:
			target = p.Location
		case p.Status == http.StatusOK && metaRefreshRe.MatchString(p.Body):
			target = html.UnescapeString(metaRefreshRe.FindStringSubmatch(p.Body)[1])
		default:
			b.t.Fatalf("the browser is not on its way to the relying party (status %d):\n%s", p.Status, p.Body)
		}
		if strings.HasPrefix(target, rpRedirect) {
			u, err := url.Parse(target)
			if err != nil {
				b.t.Fatal(err)
			}
			return u
		}
		p = b.Get(target)
	}
	b.t.Fatal("too many hops on the way to the relying party")
	return nil
}

// tokenRequest posts a token request straight to one node.
func tokenRequest(t *testing.T, tokenURL string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(rpClientID, rpClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("token response %d is not JSON: %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, body
}

// TestClusterOIDCAcrossInstances: an OIDC authorization code flow whose
// every request goes to the other instance than the one before completes
// and yields an ID token an independent relying party accepts; both
// instances publish the same signing key; a refresh token rotated on one
// instance is refused as reused on the other, which ends the whole grant;
// the token counters of the instances move.
func TestClusterOIDCAcrossInstances(t *testing.T) {
	c := newCluster(t, withOIDCClient)
	const addr = "alice.oidc@example.net"
	b := newBrowser(t, c.lb.url)
	b.enroll(testldap.Alice, c.smtp, addr)
	b.logout()
	tokensBefore := 0.0
	for _, n := range c.nodes {
		tokensBefore += metricValue(scrapeMetrics(t, n.url+"/metrics"), "idp_tokens_issued_total", map[string]string{"kind": "refresh_token"})
	}

	ctx := context.Background()
	provider, err := gooidc.NewProvider(ctx, c.lb.url)
	if err != nil {
		t.Fatalf("discovery through the balancer: %v", err)
	}
	conf := oauth2.Config{ClientID: rpClientID, ClientSecret: rpClientSecret, Endpoint: provider.Endpoint(),
		RedirectURL: rpRedirect, Scopes: []string{gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess}}
	state, nonce, verifier := oauth2.GenerateVerifier()[:20], oauth2.GenerateVerifier()[:20], oauth2.GenerateVerifier()
	c.lb.served()

	seen := mailsTo(c.smtp, addr)
	p := b.Follow(b.Get(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce))))
	if !strings.Contains(p.Body, `name="password"`) {
		t.Fatalf("expected the login form, got %d:\n%s", p.Status, p.Body)
	}
	p = b.Follow(b.Post("/login", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")}, "tx": {p.Hidden(b.t, "tx")},
		"username": {testldap.Alice.ID}, "password": {testldap.Alice.Password}}))
	code := codeFor(t, c.smtp, addr, seen)
	answer := b.toRP(b.Post("/mfa/verify", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")},
		"tx": {p.Hidden(b.t, "tx")}, "code": {code}}))
	if answer.Query().Get("state") != state || answer.Query().Get("code") == "" {
		t.Fatalf("relying party answered with %s", answer)
	}
	trace := c.lb.served()
	var prev string
	for _, line := range trace {
		node := strings.Fields(line)[0]
		if node == prev {
			t.Fatalf("two requests in a row on node %s:\n%s", node, strings.Join(trace, "\n"))
		}
		prev = node
	}

	tok, err := conf.Exchange(ctx, answer.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange through the balancer: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&gooidc.Config{ClientID: rpClientID}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("ID token refused by the relying party: %v", err)
	}
	if idt.Subject == "" || idt.Nonce != nonce {
		t.Fatalf("ID token sub %q nonce %q", idt.Subject, idt.Nonce)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}

	// Both instances publish the same keys.
	var jwks []string
	for _, n := range c.nodes {
		code, body := httpGet(t, strings.Replace(jwksURL(t, provider), c.lb.url, n.url, 1))
		if code != http.StatusOK {
			t.Fatalf("JWKS on %s: %d", n.name, code)
		}
		jwks = append(jwks, body)
	}
	if jwks[0] != jwks[1] {
		t.Fatalf("the instances publish different keys:\nA: %s\nB: %s", jwks[0], jwks[1])
	}

	// Rotate on A; the old token on B is a replay.
	tokenPath := strings.TrimPrefix(provider.Endpoint().TokenURL, c.lb.url)
	onA, onB := c.nodes[0].url+tokenPath, c.nodes[1].url+tokenPath
	status, body := tokenRequest(t, onA, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	rotated, _ := body["refresh_token"].(string)
	if status != http.StatusOK || rotated == "" || rotated == tok.RefreshToken {
		t.Fatalf("refresh on A: %d %v", status, body)
	}
	status, body = tokenRequest(t, onB, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("old refresh token on B: %d %v; want 400 invalid_grant", status, body)
	}
	// Reuse ends the grant: the rotated token dies too, on either instance.
	status, body = tokenRequest(t, onA, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rotated}})
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("rotated token after the reuse: %d %v; want 400 invalid_grant", status, body)
	}

	tokensAfter := 0.0
	for _, n := range c.nodes {
		tokensAfter += metricValue(scrapeMetrics(t, n.url+"/metrics"), "idp_tokens_issued_total", map[string]string{"kind": "refresh_token"})
	}
	if tokensAfter-tokensBefore != 2 {
		t.Errorf("refresh tokens counted on the instances: %v, want 2 (code exchange and one rotation)", tokensAfter-tokensBefore)
	}
}

func jwksURL(t *testing.T, p *gooidc.Provider) string {
	t.Helper()
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		t.Fatalf("discovery has no jwks_uri: %v", err)
	}
	return meta.JWKS
}

// TestClusterInstancesStartingTogether: four instances started at the same
// moment on an empty database migrate it once and end up with one OIDC
// signing key, which all of them publish.
func TestClusterInstancesStartingTogether(t *testing.T) {
	ls, smtp := testldap.Start(t), testsmtp.Start(t)
	dsn := testpg.DSN(t)
	const instances = 4
	nodes := make([]*node, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i := range instances {
		cfg := baseConfig(t, ls, smtp)
		cfg.Server.PublicURL = "https://idp.campus.example"
		cfg.Store.Driver = config.StorePostgres
		cfg.Store.DSN = config.SecretValue(dsn)
		cfg.Log.Level = "info"
		withOIDCClient(&cfg)
		wg.Go(func() { nodes[i], errs[i] = launchNode(fmt.Sprintf("N%d", i), cfg) })
	}
	wg.Wait()
	for i, n := range nodes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		n.register(t)
	}

	// Every instance asks for the keys at once (the first key may be made
	// on demand).
	jwks := make([]string, instances)
	for i, n := range nodes {
		wg.Go(func() {
			resp, err := http.Get(n.url + "/.well-known/openid-configuration")
			if err != nil {
				t.Error(err)
				return
			}
			var meta struct {
				JWKS string `json:"jwks_uri"`
			}
			err = json.NewDecoder(resp.Body).Decode(&meta)
			resp.Body.Close()
			if err != nil || !strings.HasPrefix(meta.JWKS, "https://idp.campus.example/") {
				t.Errorf("%s: discovery jwks_uri %q, %v", n.name, meta.JWKS, err)
				return
			}
			resp, err = http.Get(n.url + strings.TrimPrefix(meta.JWKS, "https://idp.campus.example"))
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			jwks[i] = string(body)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range jwks {
		if jwks[i] != jwks[0] || !strings.Contains(jwks[0], `"kid"`) {
			t.Fatalf("instances publish different key sets:\n%s\n%s", jwks[0], jwks[i])
		}
	}
	db, err := store.OpenPostgres(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := db.ListOIDCSigningKeys(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !keys[0].Retired.IsZero() {
		t.Fatalf("signing keys after a simultaneous start: %d, want exactly one", len(keys))
	}
	migrated := 0
	for _, n := range nodes {
		if strings.Contains(n.log.String(), `"msg":"store: schema migrated"`) {
			migrated++
		}
	}
	if migrated != 1 {
		t.Fatalf("%d instances migrated the schema, want exactly 1", migrated)
	}
}
