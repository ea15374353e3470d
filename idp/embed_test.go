package idp_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/oidcprovider"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/store"
	"github.com/campusidp/campusidp/store/storetest"
)

// embedded is an app wired the way a program outside the module wires it:
// config.Default with a URL and a secret, its own directory and mailer,
// the public SQLite store.
type embedded struct {
	cfg  config.Config
	db   *store.DB
	mail *mailbox
	srv  *httptest.Server
	app  *idp.App
}

func newEmbedded(t *testing.T, edit func(*config.Config, *idp.Options)) *embedded {
	t.Helper()
	e := &embedded{cfg: config.Default(), mail: &mailbox{}}
	e.cfg.Security.SecretKey = config.SecretValue(strings.Repeat("k", 40))
	db, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "idp.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	e.srv = httptest.NewUnstartedServer(nil)
	e.cfg.Server.PublicURL = "http://" + e.srv.Listener.Addr().String()
	opts := idp.Options{Config: &e.cfg, Directory: twoUsers(), Mailer: e.mail, Store: db, Sessions: db.SessionStore()}
	if edit != nil {
		edit(&e.cfg, &opts)
	}
	e.app, err = idp.New(opts)
	if err != nil {
		t.Fatalf("idp.New: %v", err)
	}
	e.srv.Config.Handler = e.app.Handler()
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *embedded) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// New names what is missing instead of failing later, and checks the
// config only for the parts it reads (no ldap, mail or store section).
func TestNewChecksOptions(t *testing.T) {
	cfg := config.Default()
	cfg.Server.PublicURL = "https://idp.example.ac.jp"
	cfg.Security.SecretKey = config.SecretValue(strings.Repeat("k", 40))
	db, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "idp.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	full := func() idp.Options {
		return idp.Options{Config: &cfg, Directory: twoUsers(), Mailer: &mailbox{}, Store: db, Sessions: db.SessionStore()}
	}
	tests := []struct {
		name    string
		edit    func(*idp.Options)
		wantErr []string
	}{
		{name: "complete", edit: func(*idp.Options) {}},
		{name: "no store", edit: func(o *idp.Options) { o.Store = nil }, wantErr: []string{"Options.Store", "storetest.Run"}},
		{name: "no mailer nor sessions", edit: func(o *idp.Options) { o.Mailer, o.Sessions = nil, nil },
			wantErr: []string{"Options.Sessions, Options.Mailer"}},
		{name: "invalid core setting", edit: func(o *idp.Options) {
			c := cfg
			c.MFA.Email.CodeDigits = 4
			o.Config = &c
		}, wantErr: []string{"mfa.email.code_digits"}},
		{name: "unknown message key", edit: func(o *idp.Options) {
			o.Messages = map[string]idp.Message{"login.titel": {JA: "ようこそ", EN: "Welcome"}}
		}, wantErr: []string{`unknown catalog key "login.titel"`}},
		{name: "message in one language", edit: func(o *idp.Options) {
			o.Messages = map[string]idp.Message{"site.system": {EN: "Campus Login"}}
		}, wantErr: []string{`"site.system" needs both ja and en`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := full()
			tt.edit(&opts)
			_, err := idp.New(opts)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted the options")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// Wording and branding change without copying a template: catalog
// overrides, branding.system_name (on pages and in mails), the colours and
// the logo.
func TestBrandingWithoutTemplates(t *testing.T) {
	logo := filepath.Join(t.TempDir(), "logo.svg")
	svg := `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>`
	if err := os.WriteFile(logo, []byte(svg), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEmbedded(t, func(c *config.Config, o *idp.Options) {
		c.Branding.SystemName = config.Localized{JA: "学認ログイン", EN: "Campus Sign-in"}
		c.Branding.Colors = config.BrandColors{Header: "#123456", Accent: "#654321"}
		c.Branding.LogoFile = logo
		o.Messages = map[string]idp.Message{"login.submit": {JA: "サインイン", EN: "Sign in now"}}
	})
	b := newWebBrowser(e.srv.URL)
	if err := b.get("/user/"); err != nil {
		t.Fatal(err)
	}
	page := b.last
	for _, want := range []string{"学認ログイン", "Campus Sign-in", "Sign in now", `src="/brand/logo"`, `href="/brand/style.css"`} {
		if !strings.Contains(page, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	if strings.Contains(page, "Integrated Authentication System") {
		t.Error("login page still names the built-in system")
	}
	resp, css := e.get(t, "/brand/style.css")
	if resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(css, "#123456") || !strings.Contains(css, "#654321") {
		t.Errorf("brand.css (%s):\n%s", resp.Header.Get("Content-Type"), css)
	}
	resp, body := e.get(t, "/brand/logo")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" || body != svg {
		t.Errorf("logo: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("logo served without the CSP: %q", csp)
	}

	// The mail names the configured system too.
	if err := b.signIn("/user/", "alice", "correct horse", e.mail, "alice@mail.example.net"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.mail.lastText, "Campus Sign-in") || !strings.Contains(e.mail.lastText, "学認ログイン") {
		t.Errorf("mail does not name the configured system:\n%s", e.mail.lastText)
	}
}

// auditLog is a sink that keeps what it receives.
type auditLog struct {
	mu     sync.Mutex
	events []store.AuditEvent
}

func (l *auditLog) Record(_ context.Context, e store.AuditEvent) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	return nil
}

func (l *auditLog) types() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		out = append(out, e.Type)
	}
	return out
}

// Every audit event reaches the sink once the store has it: the sink sees
// exactly the store's events, in order.
func TestAuditSinkReceivesStoredEvents(t *testing.T) {
	sink := &auditLog{}
	e := newEmbedded(t, func(_ *config.Config, o *idp.Options) { o.AuditSink = sink })
	b := newWebBrowser(e.srv.URL)
	if err := b.get("/user/"); err != nil {
		t.Fatal(err)
	}
	_ = b.post("/login", map[string][]string{"username": {"alice"}, "password": {"wrong"}})
	if err := b.signIn("/user/", "alice", "correct horse", e.mail, "alice@mail.example.net"); err != nil {
		t.Fatal(err)
	}
	stored, err := e.db.ListAudit(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := len(stored) - 1; i >= 0; i-- { // ListAudit gives the newest first
		want = append(want, stored[i].Type)
	}
	got := sink.types()
	if len(got) < 3 || !slices.Equal(got, want) {
		t.Fatalf("sink got %q, store has %q", got, want)
	}
	if !slices.Contains(got, "login_failed") {
		t.Errorf("the failed password is not among the sink's events %q", got)
	}
}

// A program's registry receives the IdP's metrics.
func TestRegistererReceivesMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEmbedded(t, func(_ *config.Config, o *idp.Options) { o.Registerer = reg })
	b := newWebBrowser(e.srv.URL)
	if err := b.get("/user/"); err != nil {
		t.Fatal(err)
	}
	_ = b.post("/login", map[string][]string{"username": {"alice"}, "password": {"wrong"}})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "idp_logins_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == "failure" && m.GetCounter().GetValue() == 1 {
				return
			}
		}
	}
	t.Fatal("the failed login is not counted in the program's registry")
}

// LDAPConfig fetches the attributes the front-ends map, once each.
func TestLDAPConfigAddsFrontEndAttributes(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*config.Config)
		extra []string
	}{
		{"OIDC claims and subject", func(c *config.Config) {
			c.LDAP.Attributes.Extra = []string{"cn"}
			c.OIDC.SubjectAttribute = "entryUUID"
			c.OIDC.Claims = []config.OIDCClaim{
				{Name: "email", Source: config.ClaimSourceMail, Scope: "email"},
				{Name: "eppn", Source: "attribute:eduPersonPrincipalName", Scope: "eppn"},
			}
		}, []string{"cn", "entryUUID", "eduPersonPrincipalName"}},
		{"SAML mapping only when enabled, names ignore case", func(c *config.Config) {
			c.LDAP.Attributes.Extra = []string{"MAIL"}
			c.OIDC.Claims = nil
			c.SAML.Enabled = true
			c.SAML.Attributes = []config.SAMLAttribute{{Name: "a", LDAP: "mail"}, {Name: "b", LDAP: "eduPersonAffiliation"}}
		}, []string{"MAIL", "eduPersonAffiliation"}},
		{"SAML disabled adds nothing", func(c *config.Config) {
			c.OIDC.Claims = nil
			c.SAML.Attributes = []config.SAMLAttribute{{Name: "b", LDAP: "eduPersonAffiliation"}}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.edit(&c)
			before := slices.Clone(c.LDAP.Attributes.Extra)
			got := idp.LDAPConfig(&c).Attributes.Extra
			if !slices.Equal(got, tt.extra) {
				t.Fatalf("extra = %q, want %q", got, tt.extra)
			}
			if !slices.Equal(c.LDAP.Attributes.Extra, before) {
				t.Fatal("the config's list was modified")
			}
		})
	}
}

// A store that passes the public conformance suite is usable everywhere a
// store is taken.
var (
	_ idp.Store          = storetest.Store(nil)
	_ oidcprovider.Store = storetest.Store(nil)
	_ samlprovider.Store = storetest.Store(nil)
)
