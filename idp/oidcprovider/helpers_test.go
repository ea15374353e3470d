package oidcprovider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/consent"
	"github.com/campusidp/campusidp/idp/oidcprovider"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mail"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/store"
)

const (
	refedsMFA    = "https://refeds.org/profile/mfa"
	passwordACR  = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	otpSubject   = testenv.OTPSubject
	webSecret    = "web-client-secret-0123456789abcdefghij"
	postSecret   = "post-client-secret-0123456789abcdefghi"
	robotSecret  = "machine-client-secret-0123456789abcdef"
	rpBase       = "http://127.0.0.1/rp"
	mailWaitTime = 10 * time.Second
)

type env struct {
	t       *testing.T
	cfg     *config.Config
	ldap    *testldap.Server
	smtp    *testsmtp.Server
	db      *store.DB
	clock   *testenv.Clock
	app     *idp.App
	prov    *oidcprovider.Provider
	srv     *httptest.Server
	issuer  string
	logs    *testenv.SyncBuffer
	metrics *metrics.Metrics
	// storeDown makes the provider's store fail as an unreachable one.
	storeDown *atomic.Bool
}

// outageStore is the provider's store with a switch that turns its record
// reads and writes into outages.
type outageStore struct {
	*store.DB
	down *atomic.Bool
}

func (s outageStore) GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error) {
	if s.down.Load() {
		return nil, fmt.Errorf("test outage: %w", store.ErrUnavailable)
	}
	return s.DB.GetRecord(ctx, kind, id, now)
}

func (s outageStore) UpdateRecord(ctx context.Context, kind, id string, now time.Time, fn func(old []byte) ([]byte, error)) error {
	if s.down.Load() {
		return fmt.Errorf("test outage: %w", store.ErrUnavailable)
	}
	return s.DB.UpdateRecord(ctx, kind, id, now, fn)
}

func (s outageStore) GetOIDCToken(ctx context.Context, id string, now time.Time) (*store.OIDCToken, error) {
	if s.down.Load() {
		return nil, fmt.Errorf("test outage: %w", store.ErrUnavailable)
	}
	return s.DB.GetOIDCToken(ctx, id, now)
}

// postSecretHash is made once: bcrypt is slow on purpose.
var postSecretHash = sync.OnceValues(func() ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte(postSecret), 10)
})

// testClients are the relying parties every test environment registers.
func testClients(t *testing.T) []config.OIDCClient {
	hash, err := postSecretHash()
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"openid", "profile", "email", "groups", "offline_access",
		"eduperson_principal_name", "eduperson_scoped_affiliation"}
	return []config.OIDCClient{
		{ID: "web", Name: "Web portal", Secret: config.SecretValue(webSecret),
			RedirectURIs:           []string{rpBase + "/web/cb"},
			PostLogoutRedirectURIs: []string{rpBase + "/web/bye"}, Scopes: all},
		{ID: "post", Name: "Form-post app", SecretHash: string(hash), TokenEndpointAuthMethod: config.OIDCAuthPost,
			RedirectURIs: []string{rpBase + "/post/cb"}, Scopes: []string{"openid", "profile"}},
		{ID: "spa", Name: "Single-page app", TokenEndpointAuthMethod: config.OIDCAuthNone,
			RedirectURIs: []string{rpBase + "/spa/cb"}, Scopes: []string{"openid", "profile", "offline_access"}},
		{ID: "mfa-app", Name: "Grades", Secret: config.SecretValue(webSecret), RequireMFA: true,
			RedirectURIs: []string{rpBase + "/mfa/cb"}},
		{ID: "pairwise", Name: "Library", Secret: config.SecretValue(webSecret), SubjectType: config.OIDCSubjectPairwise,
			RedirectURIs: []string{rpBase + "/pairwise/cb"}},
		{ID: "jwt", Name: "API client", Secret: config.SecretValue(webSecret), AccessTokenFormat: config.OIDCTokenJWT,
			RedirectURIs: []string{rpBase + "/jwt/cb"}, Scopes: []string{"openid", "profile", "groups"}},
		{ID: "machine", Secret: config.SecretValue(robotSecret), ClientCredentials: true, Scopes: []string{"groups"}},
	}
}

type envOption func(*config.Config)

func mfaRequired(c *config.Config) { c.MFA.Enrollment = config.EnrollmentRequired }

func rsaKeys(c *config.Config) { c.OIDC.Keys.Algorithm = config.OIDCAlgRS256 }

// newEnv starts slapd, an SMTP server, a SQLite store, the app with the
// provider mounted, and an HTTP server on a loopback port that is also the
// issuer.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	ls := testldap.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()

	cfg := config.Default()
	cfg.Server.PublicURL = issuer
	cfg.LDAP.URLs = []string{ls.URL}
	cfg.LDAP.UserBaseDN = testldap.PeopleDN
	cfg.Security.SecretKey = config.SecretValue(strings.Repeat("k", 32))
	cfg.Mail.From = "ninsho-qa@campus.example"
	cfg.Mail.SMTP.Host = "127.0.0.1"
	cfg.MFA.Enrollment = config.EnrollmentOptional
	cfg.LDAP.Attributes.Extra = []string{"employeeType", "entryUUID"}
	cfg.OIDC.PairwiseSalt = config.SecretValue("pairwise-salt-for-tests")
	// The fixture has no eduPerson schema: the R&E claims are built from
	// the attributes it has, as a site without them would do.
	cfg.OIDC.Claims = append(config.DefaultOIDCClaims()[:5],
		config.OIDCClaim{Name: "eduperson_principal_name", Source: "attribute:uid", Scope: "eduperson_principal_name", Suffix: "@campus.example"},
		config.OIDCClaim{Name: "eduperson_scoped_affiliation", Source: "attribute:employeeType", Scope: "eduperson_scoped_affiliation",
			Multi: true, Suffix: "@campus.example"},
	)
	cfg.OIDC.Clients = testClients(t)
	// ES256 keys are generated in microseconds; RSA generation under the
	// race detector would dominate the run. rsaKeys restores the default.
	cfg.OIDC.Keys.Algorithm = config.OIDCAlgES256
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}

	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lcfg := ls.Config()
	lcfg.Attributes.Extra = cfg.LDAP.Attributes.Extra
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
	smtpSrv := testsmtp.Start(t)
	sender, err := mail.NewSMTP(mail.SMTPConfig{
		Host: smtpSrv.Host(), Port: smtpSrv.Port(), TLS: "none", Timeout: 5 * time.Second, From: cfg.Mail.From,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	// The clock starts at the wall clock so that token times and the RP
	// library's checks agree.
	clk := testenv.NewClock(time.Now())
	m := metrics.New()
	app, err := idp.New(idp.Options{Config: &cfg, Directory: dir, Store: db, Sessions: db.SessionStore(), Now: clk.Now,
		Logger: logger, Metrics: m, Mailer: idp.MailerFunc(func(ctx context.Context, m idp.Mail) error {
			return sender.Send(ctx, mail.Message{To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
		})})
	if err != nil {
		t.Fatal(err)
	}
	// The consent step is mounted as in the binary; clients ask for it
	// only when their config says so (the default is none).
	if _, err := consent.Mount(app, logger); err != nil {
		t.Fatal(err)
	}
	down := &atomic.Bool{}
	prov, err := oidcprovider.New(ctx, oidcprovider.Options{Config: &cfg, App: app, Store: outageStore{db, down}, Directory: dir,
		Logger: logger, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	prov.Mount(app)
	srv := httptest.NewUnstartedServer(app.Handler())
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("idp log (last lines):\n%s", testenv.LastLines(logs.String(), 40))
		}
	})
	return &env{t: t, cfg: &cfg, ldap: ls, smtp: smtpSrv, db: db, clock: clk, app: app, prov: prov, srv: srv,
		issuer: issuer, logs: logs, metrics: m, storeDown: down}
}

// ---- the browser ----

// browser is the shared test browser with this package's login steps.
type browser struct {
	*testenv.Browser
	t *testing.T
	e *env
}

func (e *env) browser() *browser {
	return &browser{Browser: testenv.NewBrowser(e.t, e.srv.URL), t: e.t, e: e}
}

type page = testenv.Page

var (
	formRe   = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)"[^>]*>(.*?)</form>`)
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	refresh  = regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]+)">`)
	buttonRe = regexp.MustCompile(`<a class="button" href="([^"]+)">`)
)

// submit posts the form of page p with the given action: its hidden
// fields plus fields.
func (b *browser) submit(p page, action string, fields url.Values) page {
	b.t.Helper()
	for _, m := range formRe.FindAllStringSubmatch(p.Body, -1) {
		if html.UnescapeString(m[1]) != action {
			continue
		}
		form := url.Values{}
		for _, h := range hiddenRe.FindAllStringSubmatch(m[2], -1) {
			form.Set(h[1], html.UnescapeString(h[2]))
		}
		for k, v := range fields {
			form[k] = v
		}
		return b.Post(action, form)
	}
	b.t.Fatalf("no form posting to %s on the page (status %d):\n%s", action, p.Status, p.Body)
	return page{}
}

func hasForm(p page, action string) bool {
	for _, m := range formRe.FindAllStringSubmatch(p.Body, -1) {
		if html.UnescapeString(m[1]) == action {
			return true
		}
	}
	return false
}

// password submits the login form on p and follows on.
func (b *browser) password(p page, u testldap.User) page {
	b.t.Helper()
	if !hasForm(p, "/login") {
		b.t.Fatalf("expected the login form, got status %d:\n%s", p.Status, p.Body)
	}
	return b.Follow(b.submit(p, "/login", url.Values{"username": {u.ID}, "password": {u.Password}}))
}

// mailedCode submits the code mailed to addr on the MFA page p.
func (b *browser) mailedCode(p page, addr string) page {
	b.t.Helper()
	if !hasForm(p, "/mfa/verify") {
		b.t.Fatalf("expected the MFA page, got status %d:\n%s", p.Status, p.Body)
	}
	return b.Follow(b.submit(p, "/mfa/verify", url.Values{"code": {b.e.codeFrom(addr)}}))
}

// enroll registers addr on the enrollment page p, confirms the mailed code
// and continues the waiting login.
func (b *browser) enroll(p page, addr string) page {
	b.t.Helper()
	if !hasForm(p, "/user/otp/email/send") {
		b.t.Fatalf("expected the enrollment page, got status %d:\n%s", p.Status, p.Body)
	}
	before := b.e.mailCount(addr)
	p = b.Follow(b.submit(p, "/user/otp/email/send", url.Values{"address": {addr}}))
	b.e.waitMails(addr, before+1)
	p = b.Follow(b.submit(p, "/user/otp/email/confirm", url.Values{"code": {b.e.codeFrom(addr)}}))
	m := buttonRe.FindStringSubmatch(p.Body)
	if m == nil {
		b.t.Fatalf("no way on after the enrollment (status %d):\n%s", p.Status, p.Body)
	}
	return b.Follow(b.Get(html.UnescapeString(m[1])))
}

// codeFrom returns the code in the newest one-time password mail to addr.
func (e *env) codeFrom(addr string) string {
	e.t.Helper()
	return testenv.CodeIn(e.t, testenv.NewestMail(e.t, e.smtp, addr, otpSubject))
}

func (e *env) mailCount(addr string) int { return testenv.MailsTo(e.smtp, addr, otpSubject) }

func (e *env) waitMails(addr string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(mailWaitTime)
	for e.mailCount(addr) < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("mail %d to %s did not arrive", n, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- the relying party ----

// rp is an independent relying party built on go-oidc and x/oauth2.
type rp struct {
	t        *testing.T
	e        *env
	id       string
	redirect string
	provider *gooidc.Provider
	conf     oauth2.Config
}

// flow is one authorization request of an rp.
type flow struct {
	url, state, nonce, verifier string
}

func (e *env) rp(clientID string) *rp {
	e.t.Helper()
	var c config.OIDCClient
	for _, cl := range e.cfg.OIDC.Clients {
		if cl.ID == clientID {
			c = cl
		}
	}
	provider, err := gooidc.NewProvider(context.Background(), e.issuer)
	if err != nil {
		e.t.Fatalf("go-oidc discovery: %v", err)
	}
	r := &rp{t: e.t, e: e, id: clientID, provider: provider}
	if len(c.RedirectURIs) > 0 {
		r.redirect = c.RedirectURIs[0]
	}
	secret := ""
	switch clientID {
	case "post":
		secret = postSecret
	case "machine":
		secret = robotSecret
	case "spa":
	default:
		secret = webSecret
	}
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInHeader
	if c.AuthMethod() == config.OIDCAuthPost || c.IsPublic() {
		endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	r.conf = oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: endpoint, RedirectURL: r.redirect,
		Scopes: []string{gooidc.ScopeOpenID, "profile", "email"}}
	return r
}

// start prepares an authorization request with state, nonce and PKCE S256.
func (r *rp) start(opts ...oauth2.AuthCodeOption) *flow {
	f := &flow{state: oauth2.GenerateVerifier()[:16], nonce: oauth2.GenerateVerifier()[:16], verifier: oauth2.GenerateVerifier()}
	opts = append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.verifier), gooidc.Nonce(f.nonce)}, opts...)
	f.url = r.conf.AuthCodeURL(f.state, opts...)
	return f
}

// codeFrom checks that p sends the browser to the rp (by redirect or by the
// continue page) with the flow's state, and returns the code.
func (r *rp) codeFrom(p page, f *flow) string {
	r.t.Helper()
	q := r.answer(p)
	if q.Get("state") != f.state {
		r.t.Fatalf("state = %q, want %q", q.Get("state"), f.state)
	}
	if q.Get("error") != "" {
		r.t.Fatalf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	return q.Get("code")
}

// answer returns the query the IdP sent the browser to the rp with.
func (r *rp) answer(p page) url.Values {
	r.t.Helper()
	target := ""
	switch {
	case p.Status == http.StatusFound || p.Status == http.StatusSeeOther:
		target = p.Location
	case p.Status == http.StatusOK && refresh.MatchString(p.Body):
		target = html.UnescapeString(refresh.FindStringSubmatch(p.Body)[1])
	default:
		r.t.Fatalf("the browser is not sent to the relying party (status %d, Location %q):\n%s", p.Status, p.Location, p.Body)
	}
	if !strings.HasPrefix(target, r.redirect+"?") {
		r.t.Fatalf("sent to %q, want the redirect URI %s", target, r.redirect)
	}
	u, err := url.Parse(target)
	if err != nil {
		r.t.Fatal(err)
	}
	return u.Query()
}

func (r *rp) exchange(code string, f *flow) (*oauth2.Token, error) {
	return r.conf.Exchange(context.Background(), code, oauth2.VerifierOption(f.verifier))
}

func (r *rp) mustExchange(code string, f *flow) *oauth2.Token {
	r.t.Helper()
	tok, err := r.exchange(code, f)
	if err != nil {
		r.t.Fatalf("code exchange: %v", err)
	}
	return tok
}

// refresh redeems a refresh token at the token endpoint.
func (r *rp) refresh(refreshToken string) (*oauth2.Token, error) {
	return r.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// idClaims are the ID token claims the tests look at.
type idClaims struct {
	Subject  string   `json:"sub"`
	Nonce    string   `json:"nonce"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	Name     string   `json:"name"`
	Email    string   `json:"email"`
	Groups   []string `json:"groups"`
}

// verify checks the ID token of tok with go-oidc (signature, issuer,
// audience, expiry) and, if f is given, its nonce.
func (r *rp) verify(tok *oauth2.Token, f *flow) (*gooidc.IDToken, idClaims) {
	r.t.Helper()
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		r.t.Fatal("no id_token in the token response")
	}
	idt, err := r.provider.Verifier(&gooidc.Config{ClientID: r.id}).Verify(context.Background(), raw)
	if err != nil {
		r.t.Fatalf("id_token verification: %v", err)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		r.t.Fatal(err)
	}
	if f != nil && idt.Nonce != f.nonce {
		r.t.Fatalf("nonce = %q, want %q", idt.Nonce, f.nonce)
	}
	return idt, c
}

// userinfo calls the userinfo endpoint with method and the token in the
// Authorization header (or, inForm, the POST body).
func (r *rp) userinfo(method, accessToken string, inForm bool) (int, map[string]any, http.Header) {
	r.t.Helper()
	var body io.Reader
	if inForm {
		body = strings.NewReader(url.Values{"access_token": {accessToken}}.Encode())
	}
	req, err := http.NewRequest(method, r.provider.UserInfoEndpoint(), body)
	if err != nil {
		r.t.Fatal(err)
	}
	if inForm {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

// postForm calls a back-channel endpoint with the client's basic
// authentication.
func (r *rp) postForm(endpoint string, form url.Values) (int, map[string]any) {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.e.issuer+endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r.conf.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(r.id), url.QueryEscape(r.conf.ClientSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// oauthError returns the OAuth error code inside an x/oauth2 error.
func oauthError(err error) string {
	if re, ok := err.(*oauth2.RetrieveError); ok {
		return re.ErrorCode
	}
	return ""
}

// login runs a whole password-only login of u for rp in browser b and
// returns the token response.
func (b *browser) login(r *rp, u testldap.User, opts ...oauth2.AuthCodeOption) (*oauth2.Token, *flow) {
	b.t.Helper()
	f := r.start(opts...)
	p := b.Follow(b.Get(f.url))
	if hasForm(p, "/login") {
		p = b.password(p, u)
	}
	return r.mustExchange(r.codeFrom(p, f), f), f
}

// loginAgain moves the clock by wait, then checks that an authorization
// request with opts (named by what in a failure) shows the login form
// although the browser has a session, logs u in again and returns the
// claims of the new ID token.
func (b *browser) loginAgain(r *rp, u testldap.User, wait time.Duration, what string, opts ...oauth2.AuthCodeOption) idClaims {
	b.t.Helper()
	b.e.clock.Advance(wait)
	f := r.start(opts...)
	p := b.Follow(b.Get(f.url))
	if !hasForm(p, "/login") {
		b.t.Fatalf("%s did not show the login form: %d", what, p.Status)
	}
	_, c := r.verify(r.mustExchange(r.codeFrom(b.password(p, u), f), f), f)
	return c
}

// returnTo reads where a login transaction returns to (the provider's
// callback) from the store, as only the server knows it.
func (e *env) returnTo(txID string) string {
	e.t.Helper()
	raw, err := e.db.GetRecord(context.Background(), "login_tx", txID, e.clock.Now())
	if err != nil {
		e.t.Fatalf("login transaction %q: %v", txID, err)
	}
	var tx idp.LoginTx
	if err := json.Unmarshal(raw, &tx); err != nil {
		e.t.Fatal(err)
	}
	return tx.Request.ReturnTo
}

func decodeJSON(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decoding %s answer: %v", resp.Request.URL.Path, err)
	}
}

// directoryFor opens another directory client on the env's slapd.
func directoryFor(t *testing.T, e *env) *ldapstore.Directory {
	t.Helper()
	lcfg := e.ldap.Config()
	lcfg.Attributes.Extra = e.cfg.LDAP.Attributes.Extra
	dir, err := ldapstore.New(lcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dir.Close() })
	return dir
}

// tokensIssued reads idp_tokens_issued_total for a kind from the metrics.
func (e *env) tokensIssued(kind string) string {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	prefix := `idp_tokens_issued_total{kind="` + kind + `"} `
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return ""
}

// offlineRP is the "web" relying party asking for offline_access, so its
// logins come with a refresh token.
func (e *env) offlineRP() *rp {
	web := e.rp("web")
	web.conf.Scopes = append(web.conf.Scopes, "offline_access")
	return web
}

// offlineLogin starts an environment and logs Alice in to the "web" party
// with a refresh token.
func offlineLogin(t *testing.T) (*env, *rp, *oauth2.Token) {
	t.Helper()
	e := newEnv(t)
	web := e.offlineRP()
	tok, _ := e.browser().login(web, testldap.Alice)
	return e, web, tok
}
