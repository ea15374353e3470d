package main

import (
	"context"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/store"
	"github.com/campusidp/campusidp/store/storetest"
)

const (
	portalID       = "portal"
	portalSecret   = "portal-client-secret-for-the-example-test"
	portalCallback = "https://portal.example.ac.jp/callback"
)

// startServer runs the embedded IdP the way main does, on a test listener.
func startServer(t *testing.T, mailer *Mailer) string {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	clients := []config.OIDCClient{{
		ID:           portalID,
		Name:         "Campus portal",
		Secret:       config.SecretValue(portalSecret),
		RedirectURIs: []string{portalCallback},
		Scopes:       []string{"openid", "profile", "email"},
	}}
	srv, err := NewServer(t.Context(), base, filepath.Join(t.TempDir(), "idp.db"), strings.Repeat("s", 40),
		NewDirectory(), mailer, clients, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	ts.Config.Handler = srv.App.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	return base
}

// A relying party logs hanako in through the mounted OIDC front-end with
// the authorization code flow and PKCE: her password is checked by this
// program's Directory, her second factor is a code this program's Mailer
// received, and the ID token names her.
func TestOIDCLoginThroughOwnDirectoryAndMailer(t *testing.T) {
	ctx := t.Context()
	mailer := &Mailer{}
	base := startServer(t, mailer)

	provider, err := oidc.NewProvider(ctx, base)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	rp := oauth2.Config{
		ClientID: portalID, ClientSecret: portalSecret, RedirectURL: portalCallback,
		Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := rp.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-456"))

	b := newBrowser(t, base)
	b.get(authURL)
	b.submit("/login", url.Values{"username": {"hanako"}, "password": {"sakura-2026"}})
	// First login: the account has no second factor, so she registers a
	// private address and confirms it with the code mailed there.
	const private = "hanako.y@mail.example.net"
	b.submit("/user/otp/email/send", url.Values{"address": {private}})
	b.submit("/user/otp/email/confirm", url.Values{"code": {mailedCode(t, mailer, private)}})
	b.continueToCallback()

	cb, err := url.Parse(b.callback)
	if err != nil || cb.Query().Get("state") != "state-123" || cb.Query().Get("code") == "" {
		t.Fatalf("callback %q lacks the state or a code", b.callback)
	}
	tok, err := rp.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idToken, err := provider.Verifier(&oidc.Config{ClientID: portalID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var claims struct {
		Nonce string   `json:"nonce"`
		AMR   []string `json:"amr"`
	}
	if err := idToken.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idToken.Subject != "hanako" || claims.Nonce != "nonce-456" || !slices.Contains(claims.AMR, "mfa") {
		t.Fatalf("ID token sub=%q claims=%+v; want hanako, the nonce and mfa", idToken.Subject, claims)
	}
	// The profile comes from this program's Directory through userinfo.
	info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var profile struct {
		Name string `json:"name"`
	}
	if err := info.Claims(&profile); err != nil {
		t.Fatal(err)
	}
	if info.Subject != "hanako" || info.Email != "hanako@example.ac.jp" || profile.Name != "Hanako Yamada" {
		t.Fatalf("userinfo sub=%q email=%q name=%q", info.Subject, info.Email, profile.Name)
	}

	// The same code cannot be used twice, and the verifier is required.
	if _, err := rp.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("the code was accepted a second time")
	}
}

// A wrong password is refused by this program's Directory with the one
// generic message, and no mail is sent.
func TestWrongPasswordSendsNothing(t *testing.T) {
	mailer := &Mailer{}
	base := startServer(t, mailer)
	b := newBrowser(t, base)
	b.get("/user/")
	b.allowStatus = http.StatusUnauthorized
	b.submit("/login", url.Values{"username": {"hanako"}, "password": {"wrong"}})
	if !strings.Contains(b.body, `name="password"`) {
		t.Fatalf("not the login form again: %s", b.url)
	}
	if len(mailer.sent) != 0 {
		t.Fatalf("mail sent after a wrong password: %+v", mailer.sent)
	}
}

// The public store passes the public conformance suite, run from outside
// the project's module the way a program runs it on its own store.
func TestPublicStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "conformance.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

var codeRe = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)

func mailedCode(t *testing.T, m *Mailer, to string) string {
	t.Helper()
	mail, ok := m.Last(to)
	if !ok {
		t.Fatalf("no mail to %s", to)
	}
	c := codeRe.FindStringSubmatch(mail.Text)
	if c == nil {
		t.Fatalf("no code in the mail to %s", to)
	}
	return c[1]
}

// browser is a cookie-keeping client that stops at the relying party's
// callback (a host that does not exist here).
type browser struct {
	t           *testing.T
	base        string
	client      *http.Client
	body, url   string
	callback    string
	allowStatus int
}

var errCallback = errors.New("reached the relying party")

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, base: base}
	b.client = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), portalCallback) {
			b.callback = req.URL.String()
			return errCallback
		}
		return nil
	}}
	return b
}

func (b *browser) done(resp *http.Response, err error) {
	b.t.Helper()
	if errors.Is(err, errCallback) {
		return
	}
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.body, b.url = string(body), resp.Request.URL.String()
	if resp.StatusCode >= 400 && resp.StatusCode != b.allowStatus {
		b.t.Fatalf("%s: status %d\n%s", b.url, resp.StatusCode, b.body)
	}
}

func (b *browser) get(u string) {
	b.t.Helper()
	if !strings.HasPrefix(u, "http") {
		u = b.base + u
	}
	b.done(b.client.Get(u))
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// submit posts the page's form for action with its hidden fields and values.
func (b *browser) submit(action string, values url.Values) {
	b.t.Helper()
	i := strings.Index(b.body, `action="`+action+`"`)
	if i < 0 {
		b.t.Fatalf("no form for %s on %s:\n%s", action, b.url, b.body)
	}
	form, rest := url.Values{}, b.body[i:]
	if end := strings.Index(rest, "</form>"); end >= 0 {
		rest = rest[:end]
	}
	for _, m := range hiddenRe.FindAllStringSubmatch(rest, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for k, v := range values {
		form[k] = v
	}
	b.done(b.client.PostForm(b.base+action, form))
}

var continueRe = regexp.MustCompile(`href="((?:/authorize/callback|` + regexp.QuoteMeta(portalCallback) + `)[^"]*)"`)

// continueToCallback follows the page's way back to the application (the
// "Returning to the service" page, whose script a browser would run), if
// the browser is not there already.
func (b *browser) continueToCallback() {
	b.t.Helper()
	for i := 0; b.callback == "" && i < 3; i++ {
		m := continueRe.FindStringSubmatch(b.body)
		if m == nil {
			b.t.Fatalf("no way back to the application on %s:\n%s", b.url, b.body)
		}
		link := html.UnescapeString(m[1])
		if strings.HasPrefix(link, portalCallback) {
			b.callback = link
			return
		}
		b.get(link)
	}
}
