package idp_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
	"github.com/campusidp/campusidp/store"
)

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

type envOption = testenv.Option

// newEnv starts a real slapd, a SQLite store and the app behind an HTTP
// test server. Password-only tests run with optional enrollment; the MFA
// tests ask for "required" explicitly.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvWithLDAP(t, testldap.Start(t), opts...)
}

func newEnvWithLDAP(t *testing.T, ls *testldap.Server, opts ...envOption) *env {
	t.Helper()
	te := testenv.NewWithLDAP(t, ls, opts...)
	return &env{t: t, cfg: te.Config, ldap: te.LDAP, smtp: te.SMTP, db: te.DB, clock: te.Clock, app: te.App,
		srv: te.Server, logs: te.Logs}
}

// browser is a cookie-keeping HTTP client that does not follow redirects on
// its own, so tests can see every hop.
type browser struct {
	t      *testing.T
	env    *env
	client *http.Client
	jar    *cookiejar.Jar
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{
		Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: 20 * time.Second,
	}
	return &browser{t: e.t, env: e, client: c, jar: jar}
}

type page struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), header: resp.Header}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.env.srv.URL+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.env.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// follow GETs redirects until a page that is not a redirect.
func (b *browser) follow(p page) page {
	b.t.Helper()
	for i := 0; i < 10 && p.status >= 300 && p.status < 400; i++ {
		loc := p.location
		if u, err := url.Parse(loc); err == nil && u.IsAbs() {
			loc = u.RequestURI()
		}
		p = b.get(loc)
	}
	return p
}

var (
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
)

// hidden returns the value of a hidden form field on the page.
func (p page) hidden(t *testing.T, name string) string {
	t.Helper()
	for _, m := range hiddenRe.FindAllStringSubmatch(p.body, -1) {
		if m[1] == name {
			return html.UnescapeString(m[2])
		}
	}
	t.Fatalf("no hidden field %q on page (status %d):\n%s", name, p.status, p.body)
	return ""
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

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.env.srv.URL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}
