package idp_test

import (
	"bytes"
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/internal/config"
	"github.com/campusidp/campusidp/internal/mail"
	"github.com/campusidp/campusidp/internal/store"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
	"github.com/campusidp/campusidp/ldapstore"
)

// clock is a settable clock for lifetimes and budgets.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	cfg   *config.Config
	ldap  *testldap.Server
	smtp  *testsmtp.Server
	db    *store.DB
	clock *clock
	app   *idp.App
	srv   *httptest.Server
	logs  *syncBuffer
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

type envOption func(*config.Config, *ldapstore.Config)

// newEnv starts a real slapd, a SQLite store and the app behind an HTTP
// test server.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ls := testldap.Start(t)
	return newEnvWithLDAP(t, ls, opts...)
}

func newEnvWithLDAP(t *testing.T, ls *testldap.Server, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Server.PublicURL = "http://127.0.0.1"
	cfg.Security.SecretKey = config.SecretValue(strings.Repeat("k", 32))
	cfg.Mail.From = "ninsho-qa@campus.example"
	// Password-only tests run with optional enrollment; the MFA tests ask
	// for "required" explicitly.
	cfg.MFA.Enrollment = config.EnrollmentOptional
	cfg.MFA.Email.BlockedDomains = []string{"st.kyoto-u.ac.jp", "kyoto-u.ac.jp", "ms.c.kyoto-u.ac.jp"}
	cfg.MFA.Email.PlaceholderAddress = "id00000000@mail2.adm.example.ac.jp"
	lcfg := ls.Config()
	for _, o := range opts {
		o(&cfg, &lcfg)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir, err := ldapstore.New(lcfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dir.Close() })
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "idp.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	clk := newClock()
	smtpSrv := testsmtp.Start(t)
	sender, err := mail.NewSMTP(mail.SMTPConfig{
		Host: smtpSrv.Host(), Port: smtpSrv.Port(), TLS: "none", Timeout: 5 * time.Second, From: cfg.Mail.From,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	mailer := idp.MailerFunc(func(ctx context.Context, m idp.Mail) error {
		return sender.Send(ctx, mail.Message{To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
	})
	app, err := idp.New(idp.Options{Config: &cfg, Directory: dir, Store: db, Sessions: db.SessionStore(),
		Now: clk.Now, Mailer: mailer, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("idp log:\n%s", lastLines(logs.String(), 40))
		}
	})
	return &env{t: t, cfg: &cfg, ldap: ls, smtp: smtpSrv, db: db, clock: clk, app: app, srv: srv, logs: logs}
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

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
