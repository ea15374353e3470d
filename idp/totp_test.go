package idp_test

import (
	"context"
	"html"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
)

var (
	secretRe   = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)
	recoveryRe = regexp.MustCompile(`<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>`)
)

func (e *env) totpCode(secret string, at time.Time) string {
	e.t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// enrollApp signs in with the password and registers an authenticator app
// from the App tab; it returns the secret and the recovery codes shown.
func (b *browser) enrollApp(u testldap.User) (string, []string) {
	b.t.Helper()
	p := b.login(u.ID, u.Password)
	tx := hiddenOr(p, "tx")
	p = b.get("/user/otp?tab=app&tx=" + url.QueryEscape(tx))
	m := secretRe.FindStringSubmatch(p.body)
	if m == nil || !strings.Contains(p.body, `src="data:image/png;base64,`) {
		b.t.Fatalf("App tab shows no secret or QR code:\n%s", p.body)
	}
	secret := m[1]
	p = b.post("/user/otp/app/confirm", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}, "tx": {tx},
		"code": {b.env.totpCode(secret, b.env.clock.Now())}})
	if !strings.Contains(p.body, "settings are complete") {
		b.t.Fatalf("app setup did not complete: %d\n%s", p.status, p.body)
	}
	var codes []string
	for _, c := range recoveryRe.FindAllStringSubmatch(p.body, -1) {
		codes = append(codes, c[1])
	}
	if len(codes) != 10 {
		b.t.Fatalf("%d recovery codes shown after the first factor, want 10", len(codes))
	}
	if next := hrefOf(p, "Continue signing in"); next != "" {
		b.follow(b.get(next))
	}
	return secret, codes
}

var continueRe = regexp.MustCompile(`<a class="button" href="([^"]+)">`)

func hrefOf(p page, _ string) string {
	if m := continueRe.FindStringSubmatch(p.body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// appLogin logs in with the password and returns the App MFA page.
func (b *browser) appLogin(u testldap.User) page {
	b.t.Helper()
	p := b.login(u.ID, u.Password)
	if !strings.Contains(p.body, "Multi-Factor Authentication : App") {
		b.t.Fatalf("expected the App MFA page, got %d:\n%s", p.status, p.body)
	}
	return p
}

func (b *browser) submitApp(p page, code string) page {
	b.t.Helper()
	return b.post("/mfa/verify", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}, "tx": {p.hidden(b.t, "tx")},
		"method": {"totp"}, "code": {code}})
}

func TestAppSetupAndLogin(t *testing.T) {
	e := newEnv(t, requireMFA)
	b := e.browser()
	secret, _ := b.enrollApp(testldap.Alice)
	if !signedIn(b.follow(b.get("/user/"))) {
		t.Fatal("not signed in after enrolling the app")
	}
	b.logout()
	e.clock.Advance(30 * time.Second)
	p := b.appLogin(testldap.Alice)
	p = b.follow(b.submitApp(p, e.totpCode(secret, e.clock.Now())))
	if !signedIn(p) {
		t.Fatalf("login with the app code failed:\n%s", p.body)
	}
	raw, _ := e.db.GetRecord(context.Background(), "mfa_factors", testldap.Alice.ID, e.clock.Now())
	if strings.Contains(string(raw), secret) {
		t.Fatal("the TOTP secret is stored in clear")
	}
}

func TestAppCodeReplayRefused(t *testing.T) {
	e := newEnv(t, requireMFA)
	secret, _ := e.browser().enrollApp(testldap.Alice)
	e.clock.Advance(30 * time.Second)
	code := e.totpCode(secret, e.clock.Now())

	b := e.browser()
	if !signedIn(b.follow(b.submitApp(b.appLogin(testldap.Alice), code))) {
		t.Fatal("first use failed")
	}
	b2 := e.browser()
	r := b2.submitApp(b2.appLogin(testldap.Alice), code)
	if signedIn(b2.follow(r)) || !strings.Contains(r.body, "already been used") {
		t.Fatalf("replayed code: %d\n%s", r.status, r.body)
	}

	// Two parallel logins with one fresh code: exactly one gets in.
	e.clock.Advance(30 * time.Second)
	code = e.totpCode(secret, e.clock.Now())
	bs := []*browser{e.browser(), e.browser()}
	pages := []page{bs[0].appLogin(testldap.Alice), bs[1].appLogin(testldap.Alice)}
	var wg sync.WaitGroup
	results := make([]bool, 2)
	for i := range bs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			bs[i].submitApp(pages[i], code)
		}(i)
	}
	wg.Wait()
	for i := range bs {
		results[i] = signedIn(bs[i].follow(bs[i].get("/user/")))
	}
	if results[0] == results[1] {
		t.Fatalf("parallel replay: signed in %v, want exactly one", results)
	}
}

func TestAppCodeSkew(t *testing.T) {
	e := newEnv(t, requireMFA)
	secret, _ := e.browser().enrollApp(testldap.Alice)
	cases := []struct {
		name   string
		offset time.Duration
		ok     bool
	}{
		{"two steps behind", -60 * time.Second, false},
		{"two steps ahead", 60 * time.Second, false},
		{"one step behind", -30 * time.Second, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(2 * time.Minute) // past every step used so far
			b := e.browser()
			p := b.appLogin(testldap.Alice)
			got := signedIn(b.follow(b.submitApp(p, e.totpCode(secret, e.clock.Now().Add(tc.offset)))))
			if got != tc.ok {
				t.Fatalf("signed in = %v, want %v", got, tc.ok)
			}
		})
	}
}

func TestAppFailuresShareTheBudget(t *testing.T) {
	e := newEnv(t, requireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.MFA.Email.FailureBudget = config.Budget{Limit: 3, Window: time.Hour}
	})
	b := e.browser()
	secret, _ := b.enrollApp(testldap.Alice)
	// Register an email address too, from the fully signed-in session.
	e.clock.Advance(time.Minute)
	b.registerAddress(b.follow(b.get("/user/otp")), "budget@example.net")
	b.logout()

	e.clock.Advance(time.Minute)
	p := b.appLogin(testldap.Alice)
	b.submitApp(p, "000000")
	b.submitApp(p, "111111")
	// The third failure is a mailed code on the same login.
	ep := b.get("/mfa?tx=" + url.QueryEscape(p.hidden(t, "tx")) + "&method=email_otp")
	b.post("/mfa/send", url.Values{"csrf_token": {ep.hidden(t, "csrf_token")}, "tx": {ep.hidden(t, "tx")}})
	b.submitCode(ep, "222222", false)
	r := b.submitApp(p, e.totpCode(secret, e.clock.Now()))
	if signedIn(b.follow(r)) || !strings.Contains(r.body, "Too many failed attempts") {
		t.Fatalf("the app code passed a budget spent by app and email failures:\n%s", r.body)
	}
	// This browser passed a second factor before (enrolment): its failures
	// are its own budget, not the account-wide ceiling.
	c, _ := e.db.GetCounter(context.Background(), "mfa:fail:"+testldap.Alice.ID, e.clock.Now())
	if c.Count != 0 {
		t.Fatalf("the owner's browser spent %d of the account-wide ceiling, want 0", c.Count)
	}
}

func TestRecoveryCodes(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "recovery@example.net"
	b := e.browser()
	_, codes := b.enrollApp(testldap.Alice)
	e.clock.Advance(time.Minute)
	b.registerAddress(b.follow(b.get("/user/otp")), addr)
	b.logout()

	use := func(code string) (bool, page) {
		nb := e.browser()
		p := nb.appLogin(testldap.Alice)
		r := nb.post("/mfa/recovery", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")}, "recovery_code": {code}})
		return signedIn(nb.follow(r)), r
	}
	if ok, r := use(strings.ToUpper(codes[0])); !ok {
		t.Fatalf("recovery code refused:\n%s", r.body)
	}
	if e.mailCount(addr, "リカバリーコード使用のお知らせ / Notification of recovery code use") != 1 {
		t.Error("recovery code use was not mailed")
	}
	if ok, _ := use(codes[0]); ok {
		t.Fatal("a recovery code worked twice")
	}
	if ok, _ := use(codes[1]); !ok {
		t.Fatal("the other recovery codes stopped working")
	}

	// Regeneration (from a session signed in with a recovery code) voids the old codes.
	nb := e.browser()
	p := nb.appLogin(testldap.Alice)
	nb.follow(nb.post("/mfa/recovery", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")}, "recovery_code": {codes[2]}}))
	p = nb.follow(nb.get("/user/otp"))
	r := nb.post("/user/otp/recovery", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}})
	fresh := recoveryRe.FindAllStringSubmatch(r.body, -1)
	if len(fresh) != 10 {
		t.Fatalf("regeneration showed %d codes:\n%s", len(fresh), r.body)
	}
	if ok, _ := use(codes[3]); ok {
		t.Fatal("an old recovery code worked after regeneration")
	}
	if ok, _ := use(fresh[0][1]); !ok {
		t.Fatal("a regenerated code was refused")
	}
}

func TestSwitchBetweenFactors(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "switch@example.net"
	b := e.browser()
	secret, _ := b.enrollApp(testldap.Alice)
	e.clock.Advance(time.Minute)
	b.registerAddress(b.follow(b.get("/user/otp")), addr) // email used last now
	b.logout()

	p := b.mfaLogin(testldap.Alice) // the default is the method used last: email
	if !strings.Contains(p.body, `method=totp`) {
		t.Fatalf("no link to the app login:\n%s", p.body)
	}
	p = b.get("/mfa?tx=" + url.QueryEscape(p.hidden(t, "tx")) + "&method=totp")
	if !strings.Contains(p.body, "Multi-Factor Authentication : App") || !strings.Contains(p.body, "method=email_otp") {
		t.Fatalf("switching to the app page failed:\n%s", p.body)
	}
	e.clock.Advance(30 * time.Second)
	if !signedIn(b.follow(b.submitApp(p, e.totpCode(secret, e.clock.Now())))) {
		t.Fatal("app login after switching failed")
	}
	b.logout()
	// Now the app was used last, so it is offered first.
	b.appLogin(testldap.Alice)
}

func TestResetClearsTheApp(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "appreset@example.net"
	b := e.browser()
	b.enrollApp(testldap.Alice)
	e.clock.Advance(time.Minute)
	b.registerAddress(b.follow(b.get("/user/otp")), addr)
	e.clock.Advance(time.Minute)
	e.browser().resetWithMail(testldap.Alice, addr)
	raw, err := e.db.GetRecord(context.Background(), "mfa_factors", testldap.Alice.ID, e.clock.Now())
	if err == nil {
		t.Fatalf("factors survive the reset: %s", raw)
	}
}
