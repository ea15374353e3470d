package e2e

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp/oidcprovider"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
)

const (
	rpClientID   = "portal"
	rpClientName = "Campus Portal"
	rpSecret     = "portal-secret-0123456789abcdefghijklmn"
)

// testRP is a small relying party: /start sends the browser to the IdP with
// PKCE and a nonce, /cb redeems the code on the back channel, verifies the
// ID token with an independent OIDC library and shows its claims.
type testRP struct {
	srv    *httptest.Server
	issuer string

	once     sync.Once
	provider *gooidc.Provider
	initErr  error

	mu     sync.Mutex
	starts map[string]rpStart // by state
}

type rpStart struct{ verifier, nonce string }

func newTestRP(t *testing.T) *testRP {
	rp := &testRP{starts: map[string]rpStart{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /start", rp.start)
	mux.HandleFunc("GET /cb", rp.callback)
	rp.srv = httptest.NewServer(mux)
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *testRP) oauth(ctx context.Context) (*oauth2.Config, error) {
	rp.once.Do(func() { rp.provider, rp.initErr = gooidc.NewProvider(ctx, rp.issuer) })
	if rp.initErr != nil {
		return nil, rp.initErr
	}
	return &oauth2.Config{ClientID: rpClientID, ClientSecret: rpSecret, Endpoint: rp.provider.Endpoint(),
		RedirectURL: rp.srv.URL + "/cb", Scopes: []string{gooidc.ScopeOpenID, "profile", "email"}}, nil
}

func (rp *testRP) start(w http.ResponseWriter, r *http.Request) {
	conf, err := rp.oauth(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	state, st := randomString(), rpStart{verifier: oauth2.GenerateVerifier(), nonce: randomString()}
	rp.mu.Lock()
	rp.starts[state] = st
	rp.mu.Unlock()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.verifier), gooidc.Nonce(st.nonce)}
	if acr := r.URL.Query().Get("acr"); acr != "" { // /start?acr=... asks for an acr
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", acr))
	}
	http.Redirect(w, r, conf.AuthCodeURL(state, opts...), http.StatusFound)
}

func (rp *testRP) callback(w http.ResponseWriter, r *http.Request) {
	fail := func(format string, args ...any) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<!doctype html><html lang="en"><link rel="icon" href="data:,"><title>RP</title><p id="rp-error">%s</p>`, html.EscapeString(fmt.Sprintf(format, args...)))
	}
	q := r.URL.Query()
	rp.mu.Lock()
	st, ok := rp.starts[q.Get("state")]
	delete(rp.starts, q.Get("state"))
	rp.mu.Unlock()
	if !ok {
		fail("unknown state (error=%q)", q.Get("error"))
		return
	}
	conf, err := rp.oauth(r.Context())
	if err != nil {
		fail("discovery: %v", err)
		return
	}
	tok, err := conf.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(st.verifier))
	if err != nil {
		fail("code exchange: %v", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.provider.Verifier(&gooidc.Config{ClientID: rpClientID}).Verify(r.Context(), raw)
	if err != nil {
		fail("id token: %v", err)
		return
	}
	var claims struct {
		Nonce string   `json:"nonce"`
		AMR   []string `json:"amr"`
		ACR   string   `json:"acr"`
	}
	if err := idt.Claims(&claims); err != nil || claims.Nonce != st.nonce {
		fail("claims %v, nonce %q want %q", err, claims.Nonce, st.nonce)
		return
	}
	// The profile comes from the userinfo endpoint, with the access token.
	info, err := rp.provider.UserInfo(r.Context(), oauth2.StaticTokenSource(tok))
	var profile struct {
		Name string `json:"name"`
	}
	if err != nil {
		fail("userinfo: %v", err)
		return
	}
	if err := info.Claims(&profile); err != nil || info.Subject != idt.Subject {
		fail("userinfo claims: %v (subject %q, want %q)", err, info.Subject, idt.Subject)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html lang="en"><link rel="icon" href="data:,"><title>RP</title><p id="rp-result">sub=%s amr=%s acr=%s name=%s</p>`,
		html.EscapeString(idt.Subject), html.EscapeString(strings.Join(claims.AMR, ",")),
		html.EscapeString(claims.ACR), html.EscapeString(profile.Name))
}

// rpResult returns what the relying party learnt from the ID token.
func (tb *tab) rpResult() string {
	tb.t.Helper()
	got := eval[string](tb, `(document.getElementById('rp-result') || document.getElementById('rp-error') || document.body).innerText`)
	if !strings.HasPrefix(got, "sub=") {
		tb.t.Fatalf("the relying party did not sign the user in: %s", got)
	}
	return got
}

// An OpenID Connect login from a relying party: the first one enrolls the
// mailed one-time password on the way, the next one in the same browser is
// single sign-on, and a new browser logs in with the mailed code.
func TestOIDCLogin(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	rp := newTestRP(t)
	e := testenv.New(t, testenv.RequireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.OIDC.Keys.Algorithm = config.OIDCAlgES256 // RSA key generation under -race would dominate the run
		c.OIDC.Clients = []config.OIDCClient{{ID: rpClientID, Name: rpClientName, Secret: config.SecretValue(rpSecret),
			RedirectURIs: []string{rp.srv.URL + "/cb"}, Scopes: []string{"openid", "profile", "email"}}}
	})
	// The relying party checks token times against the wall clock.
	e.Clock.Set(time.Now())
	prov, err := oidcprovider.New(t.Context(), oidcprovider.Options{Config: e.Config, App: e.App, Store: e.DB,
		Directory: e.Directory, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	prov.Mount(e.App)
	rp.issuer = prov.Issuer()
	const addr = "alice.oidc@example.org"
	u := testldap.Alice

	tb := newTab(t, e)
	tb.navigate(chromedp.Navigate(rp.srv.URL + "/start"))
	tb.mustSee("You are signing in to:", rpClientName)
	tb.page("login for the portal", http.StatusOK)
	tb.submitLogin(u)
	tb.mustSee(settingsTitle)
	tb.registerAddress(addr, false)
	tb.page("setup on the way to the portal", http.StatusOK)
	tb.click("a.button") // "Continue signing in": on to the relying party
	tb.waitForURL(rp.srv.URL + "/cb")
	got := tb.rpResult()
	if !strings.Contains(got, "sub="+u.ID) || !strings.Contains(got, "mfa") || !strings.Contains(got, "name="+u.DisplayName) {
		t.Fatalf("first login: the relying party got %s", got)
	}

	// Single sign-on: the session satisfies the next request at once.
	mails := e.MailCount(addr, testenv.OTPSubject)
	tb.navigate(chromedp.Navigate(rp.srv.URL + "/start"))
	tb.waitForURL(rp.srv.URL + "/cb")
	if got := tb.rpResult(); !strings.Contains(got, "sub="+u.ID) {
		t.Fatalf("single sign-on: %s", got)
	}
	if e.MailCount(addr, testenv.OTPSubject) != mails {
		t.Error("single sign-on mailed a code")
	}

	// Another browser: password, then the mailed code.
	e.Clock.Advance(e.Config.MFA.Email.ResendCooldown)
	other := newTab(t, e)
	other.navigate(chromedp.Navigate(rp.srv.URL + "/start"))
	other.submitLogin(u)
	other.mustSee(mfaEmailTitle)
	other.page("mfa for the portal", http.StatusOK)
	other.fill("mfa-code", e.CodeFrom(addr, testenv.OTPSubject))
	other.click(mfaButton)
	other.waitForURL(rp.srv.URL + "/cb")
	got = other.rpResult()
	amr := strings.Split(strings.TrimPrefix(strings.Fields(got)[1], "amr="), ",")
	if !strings.Contains(got, "sub="+u.ID) || !slices.Contains(amr, "otp") || !slices.Contains(amr, "mfa") {
		t.Fatalf("login with the mailed code: the relying party got %s", got)
	}
}
