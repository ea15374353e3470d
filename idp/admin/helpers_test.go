package admin_test

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
	"github.com/campusidp/campusidp/store"
)

// The console's tests drive it the way a browser does, through the app
// that testenv wires as production does (the console mounted at /admin/).
// These helpers are the few the idp package's tests use too.

const otpSubject = testenv.OTPSubject

var requireMFA = testenv.RequireMFA

type env struct {
	t     *testing.T
	cfg   *config.Config
	ldap  *testldap.Server
	smtp  *testsmtp.Server
	db    *store.DB
	clock *testenv.Clock
	app   *idp.App
	srv   *httptest.Server
	logs  *testenv.SyncBuffer
}

func newEnv(t *testing.T, opts ...testenv.Option) *env {
	t.Helper()
	te := testenv.New(t, opts...)
	return &env{t: t, cfg: te.Config, ldap: te.LDAP, smtp: te.SMTP, db: te.DB, clock: te.Clock, app: te.App,
		srv: te.Server, logs: te.Logs}
}

// codeFrom reads the newest mail to addr with the subject and returns its code.
func (e *env) codeFrom(addr, subject string) string {
	e.t.Helper()
	m := testenv.NewestMail(e.t, e.smtp, addr, subject)
	return testenv.CodeIn(e.t, m)
}

func (e *env) mailCount(addr, subject string) int { return testenv.MailsTo(e.smtp, addr, subject) }

// browser is testenv's cookie-keeping browser with this package's short
// names; it does not follow redirects on its own, so tests see every hop.
type browser struct {
	t      *testing.T
	env    *env
	client *http.Client
	tb     *testenv.Browser
}

func (e *env) browser() *browser {
	tb := testenv.NewBrowser(e.t, e.srv.URL)
	return &browser{t: e.t, env: e, client: tb.Client, tb: tb}
}

type page struct {
	status   int
	body     string
	location string
}

func fromTestenv(p testenv.Page) page {
	return page{status: p.Status, body: p.Body, location: p.Location}
}

func (p page) asTestenv() testenv.Page {
	return testenv.Page{Status: p.status, Body: p.body, Location: p.location}
}

func (b *browser) do(req *http.Request) page { b.t.Helper(); return fromTestenv(b.tb.Do(req)) }

func (b *browser) get(path string) page { b.t.Helper(); return fromTestenv(b.tb.Get(path)) }

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	return fromTestenv(b.tb.Post(path, form))
}

// follow GETs redirects until a page that is not a redirect.
func (b *browser) follow(p page) page {
	b.t.Helper()
	return fromTestenv(b.tb.Follow(p.asTestenv()))
}

// hidden returns the value of a hidden form field on the page.
func (p page) hidden(t *testing.T, name string) string {
	t.Helper()
	return p.asTestenv().Hidden(t, name)
}

func hiddenOr(p page, name string) string {
	v, _ := p.asTestenv().HiddenOK(name)
	return v
}

// openLogin follows /user/ to the login form.
func (b *browser) openLogin() page {
	b.t.Helper()
	p := b.follow(b.get("/user/"))
	if !strings.Contains(p.body, `name="password"`) {
		b.t.Fatalf("expected the login form, got status %d:\n%s", p.status, p.body)
	}
	return p
}

// submitLogin posts the login form found on p.
func (b *browser) submitLogin(p page, id, password string) page {
	b.t.Helper()
	return b.post("/login", url.Values{
		"csrf_token": {p.hidden(b.t, "csrf_token")},
		"tx":         {p.hidden(b.t, "tx")},
		"username":   {id},
		"password":   {password},
	})
}

// login runs the whole password login and returns the page it lands on.
func (b *browser) login(id, password string) page {
	b.t.Helper()
	return b.follow(b.submitLogin(b.openLogin(), id, password))
}

// registerAddress runs the settings form on page p: address, code, confirm.
func (b *browser) registerAddress(p page, addr string) page {
	b.t.Helper()
	p = b.follow(b.post("/user/otp/email/send", url.Values{
		"csrf_token": {p.hidden(b.t, "csrf_token")}, "tx": {hiddenOr(p, "tx")}, "address": {addr},
	}))
	if !strings.Contains(p.body, "An email message has been sent to") || !strings.Contains(p.body, addr) {
		b.t.Fatalf("after sending, the page does not say where the mail went (%d):\n%s", p.status, p.body)
	}
	code := b.env.codeFrom(addr, otpSubject)
	return b.post("/user/otp/email/confirm", url.Values{
		"csrf_token": {p.hidden(b.t, "csrf_token")}, "tx": {hiddenOr(p, "tx")}, "code": {code},
	})
}

// enroll logs in with the password and registers addr as the first factor.
func (b *browser) enroll(u testldap.User, addr string) page {
	b.t.Helper()
	p := b.login(u.ID, u.Password)
	if !strings.Contains(p.body, "One-Time Password Settings") {
		b.t.Fatalf("expected the enrollment page after the password, got %d:\n%s", p.status, p.body)
	}
	p = b.registerAddress(p, addr)
	if !strings.Contains(p.body, "settings are complete") {
		b.t.Fatalf("setup did not complete: %d\n%s", p.status, p.body)
	}
	return p
}

// mfaLogin logs in with the password and returns the MFA page.
func (b *browser) mfaLogin(u testldap.User) page {
	b.t.Helper()
	p := b.login(u.ID, u.Password)
	if !strings.Contains(p.body, "Multi-Factor Authentication : Email") {
		b.t.Fatalf("expected the MFA page, got %d:\n%s", p.status, p.body)
	}
	return p
}

func (b *browser) submitCode(p page, code string, trust bool) page {
	b.t.Helper()
	form := url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}, "tx": {p.hidden(b.t, "tx")}, "code": {code}}
	if trust {
		form.Set("trust", "1")
	}
	return b.post("/mfa/verify", form)
}

func (b *browser) logout() {
	b.t.Helper()
	p := b.follow(b.get("/user/"))
	b.post("/logout", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}})
}

func signedIn(p page) bool { return strings.Contains(p.body, "Signed in as") }

// startReset logs in to the reset flow and presses Initialize.
func (b *browser) startReset(u testldap.User) page {
	b.t.Helper()
	p := b.get("/reset")
	p = b.follow(b.post("/reset/login", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")},
		"username": {u.ID}, "password": {u.Password}}))
	if !strings.Contains(p.body, "Initialize One-Time Password Settings") {
		b.t.Fatalf("expected the Initialize page:\n%s", p.body)
	}
	return b.follow(b.post("/reset/init", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}}))
}

var continueRe = regexp.MustCompile(`<a class="button" href="([^"]+)">`)

// hrefOf is the page's "continue" button link.
func hrefOf(p page, _ string) string {
	if m := continueRe.FindStringSubmatch(p.body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// wrong returns a code that differs from code.
func wrong(code string) string {
	if strings.HasPrefix(code, "0") {
		return "1" + code[1:]
	}
	return "0" + code[1:]
}
