package oidcprovider_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/store"
	"golang.org/x/oauth2"
)

// consentClient makes the web client ask for consent (once), with email
// optional.
func consentClient(mode string) envOption {
	return func(c *config.Config) {
		for i := range c.OIDC.Clients {
			if c.OIDC.Clients[i].ID == "web" {
				c.OIDC.Clients[i].Consent = mode
				c.OIDC.Clients[i].OptionalScopes = []string{"email"}
			}
		}
	}
}

var consentIDRe = regexp.MustCompile(`name="id" value="([^"]+)"`)

func (b *browser) consentPage(p page) {
	b.t.Helper()
	if !hasForm(p, "/consent") || !consentIDRe.MatchString(p.Body) {
		b.t.Fatalf("expected the consent page, got %d (%s):\n%s", p.Status, p.URL, p.Body)
	}
}

func (b *browser) answerConsent(p page, decision string, remember bool, optional ...string) page {
	b.t.Helper()
	b.consentPage(p)
	fields := url.Values{"decision": {decision}, "optional": optional}
	if remember {
		fields.Set("remember", "1")
	}
	return b.Follow(b.submit(p, "/consent", fields))
}

// authorize starts a flow and returns the page after the password (if the
// browser had no session).
func (b *browser) authorize(r *rp, u testldap.User, opts ...oauth2.AuthCodeOption) (*flow, page) {
	b.t.Helper()
	f := r.start(opts...)
	p := b.Follow(b.Get(f.url))
	if hasForm(p, "/login") {
		p = b.password(p, u)
	}
	return f, p
}

func (e *env) auditCount(typ string) int {
	e.t.Helper()
	ev, err := e.db.ListAudit(e.t.Context(), store.AuditFilter{Type: typ})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(ev)
}

// TestConsentOptionalClaimOnlyWhenTicked: the claims of an optional scope
// reach the ID token and userinfo only when the user ticked it; the answer
// is remembered (no page on the next login), asked again when the client
// asks for more, and again after it is revoked on /user/.
func TestConsentOptionalClaimOnlyWhenTicked(t *testing.T) {
	e := newEnv(t, consentClient(config.ConsentOnce), func(c *config.Config) {
		for i := range c.OIDC.Clients {
			if c.OIDC.Clients[i].ID == "web" {
				c.OIDC.Clients[i].UserinfoInIDToken = true
			}
		}
	})
	r := e.rp("web")
	b := e.browser()
	u := testldap.Alice

	claimsOf := func(f *flow, p page) (idClaims, map[string]any) {
		t.Helper()
		tok := r.mustExchange(r.codeFrom(p, f), f)
		_, c := r.verify(tok, f)
		status, info, _ := r.userinfo(http.MethodGet, tok.AccessToken, false)
		if status != http.StatusOK {
			t.Fatalf("userinfo: %d", status)
		}
		return c, info
	}

	f, p := b.authorize(r, u)
	b.consentPage(p)
	for _, want := range []string{"Web portal", u.Mail, u.DisplayName, `name="optional" type="checkbox" value="email"`} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	c, info := claimsOf(f, b.answerConsent(p, "accept", true))
	if c.Email != "" || info["email"] != nil {
		t.Errorf("email released without being ticked: id_token %q, userinfo %v", c.Email, info["email"])
	}
	if c.Name != u.DisplayName || info["name"] != u.DisplayName {
		t.Errorf("required profile claims missing: id_token %q, userinfo %v", c.Name, info["name"])
	}

	// Remembered: no page, same release.
	f, p = b.authorize(r, u)
	c, info = claimsOf(f, p)
	if c.Email != "" || info["email"] != nil || c.Name != u.DisplayName {
		t.Errorf("remembered consent released email %q / %v, name %q", c.Email, info["email"], c.Name)
	}

	// prompt=consent asks although the answer is remembered.
	_, p = b.authorize(r, u, oauth2.SetAuthURLParam("prompt", "consent"))
	b.consentPage(p)

	// The client asks for one more scope: asked again; email ticked.
	f, p = b.authorize(r, u, oauth2.SetAuthURLParam("scope", "openid profile email groups"))
	b.consentPage(p)
	c, info = claimsOf(f, b.answerConsent(p, "accept", true, "email"))
	if c.Email != u.Mail || info["email"] != u.Mail {
		t.Errorf("ticked email: id_token %q, userinfo %v", c.Email, info["email"])
	}

	// Revoked on /user/: asked again.
	up := b.Get("/user/")
	if !strings.Contains(up.Body, "Web portal") {
		t.Fatalf("/user/ does not list the consents:\n%s", up.Body)
	}
	if rv := b.submit(up, "/user/consents/revoke", nil); rv.Status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", rv.Status)
	}
	if got := e.auditCount("consent_revoked"); got != 1 {
		t.Errorf("%d consent_revoked events, want 1", got)
	}
	_, p = b.authorize(r, u)
	b.consentPage(p)
	if got := e.auditCount("consent_given"); got != 2 {
		t.Errorf("%d consent_given events, want 2", got)
	}
}

// TestConsentDeclinedSendsAccessDenied: declining shows a page whose link
// takes access_denied (with the state) to the client; no code is issued.
func TestConsentDeclinedSendsAccessDenied(t *testing.T) {
	e := newEnv(t, consentClient(config.ConsentAlways), func(c *config.Config) {
		c.OIDC.Clients[0].LogoURI = "https://portal.campus.example/logo.png"
	})
	r := e.rp("web")
	b := e.browser()
	f, p := b.authorize(r, testldap.Alice)
	// The client's logo is shown, and the page's policy allows images from
	// its origin only (besides its own).
	if !strings.Contains(p.Body, `<img class="service-logo" src="https://portal.campus.example/logo.png"`) {
		t.Error("the consent page lacks the client's logo")
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data: https://portal.campus.example;") ||
		strings.Count(csp, "img-src") != 1 || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("consent page CSP = %q", csp)
	}
	if strings.Contains(p.Body, `name="remember"`) {
		t.Error("consent: always offers to remember")
	}
	p = b.answerConsent(p, "decline", false)
	if !strings.Contains(p.Body, "You declined to send your information") {
		t.Errorf("no declined page:\n%s", p.Body)
	}
	m := regexp.MustCompile(`<a class="button" href="([^"]+)"`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no link back to the client:\n%s", p.Body)
	}
	target, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil || !strings.HasPrefix(target.String(), r.redirect+"?") {
		t.Fatalf("link %q is not the redirect URI", m[1])
	}
	if q := target.Query(); q.Get("error") != "access_denied" || q.Get("state") != f.state || q.Get("code") != "" {
		t.Errorf("answer to the client = %v, want access_denied with the state", q)
	}
	if e.auditCount("consent_declined") != 1 || e.auditCount("oidc_code_issued") != 0 {
		t.Errorf("audit: declined %d, codes %d", e.auditCount("consent_declined"), e.auditCount("oidc_code_issued"))
	}
}

// TestConsentPromptNoneAnswersConsentRequired: with consent: always, a
// prompt=none request from a signed-in browser cannot show the page and
// answers consent_required.
func TestConsentPromptNoneAnswersConsentRequired(t *testing.T) {
	e := newEnv(t, consentClient(config.ConsentAlways))
	r := e.rp("web")
	b := e.browser()
	f, p := b.authorize(r, testldap.Alice)
	r.codeFrom(b.answerConsent(p, "accept", false), f)

	f = r.start(oauth2.SetAuthURLParam("prompt", "none"))
	q := r.answer(b.Get(f.url))
	if q.Get("error") != "consent_required" || q.Get("state") != f.state || q.Get("code") != "" {
		t.Errorf("prompt=none needing consent answered %v", q)
	}
}
