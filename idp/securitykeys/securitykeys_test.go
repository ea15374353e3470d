package securitykeys_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/store"
)

// browser is testenv's cookie-keeping browser, at the public URL (the
// keys' origin), with this package's short names; it shows every redirect.
type browser struct {
	t   *testing.T
	env *testenv.Env
	tb  *testenv.Browser
}

func newBrowser(t *testing.T, env *testenv.Env) *browser {
	tb := testenv.NewBrowser(t, env.Config.Server.PublicURL)
	tb.Client.Timeout = 30 * time.Second
	return &browser{t: t, env: env, tb: tb}
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

func (b *browser) get(path string) page { b.t.Helper(); return fromTestenv(b.tb.Get(path)) }

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	return fromTestenv(b.tb.Post(path, form))
}

func (b *browser) follow(p page) page {
	b.t.Helper()
	return fromTestenv(b.tb.Follow(p.asTestenv()))
}

var optionsRe = regexp.MustCompile(`data-options="([^"]*)"`)

func (p page) hidden(t *testing.T, name string) string {
	t.Helper()
	return p.asTestenv().Hidden(t, name)
}

func (p page) options(t *testing.T) string {
	t.Helper()
	m := optionsRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no WebAuthn options on page (status %d):\n%s", p.status, p.body)
	}
	return html.UnescapeString(m[1])
}

// login signs in with the password and returns the page it lands on.
func (b *browser) login(u testldap.User) page {
	b.t.Helper()
	p := b.follow(b.get("/user/"))
	return b.follow(b.post("/login", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}, "tx": {p.hidden(b.t, "tx")},
		"username": {u.ID}, "password": {u.Password}}))
}

// registerEmail registers addr as the user's email factor.
func (b *browser) registerEmail(addr string) {
	b.t.Helper()
	p := b.follow(b.get("/user/otp"))
	b.follow(b.post("/user/otp/email/send", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}, "tx": {p.hidden(b.t, "tx")}, "address": {addr}}))
	code := b.env.CodeFrom(addr, testenv.OTPSubject)
	p = b.post("/user/otp/email/confirm", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}, "tx": {p.hidden(b.t, "tx")}, "code": {code}})
	if p.status != http.StatusOK {
		b.t.Fatalf("email confirm: status %d\n%s", p.status, p.body)
	}
}

// registerKey registers k under name from the settings tab and returns
// the result page.
func (b *browser) registerKey(k *softKey, name, origin string) page {
	b.t.Helper()
	p := b.follow(b.get("/user/otp/keys"))
	if p.status != http.StatusOK {
		b.t.Fatalf("keys page: status %d\n%s", p.status, p.body)
	}
	return b.post("/user/otp/keys/register", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}, "tx": {p.hidden(b.t, "tx")},
		"name": {name}, "credential": {k.create(b.t, p.options(b.t), origin)}})
}

func keyEnv(t *testing.T) *testenv.Env {
	env := testenv.New(t, testenv.Localhost, testenv.RequireMFA)
	if env.Keys == nil {
		t.Fatal("security keys are not mounted on a localhost public URL")
	}
	return env
}

func origin(env *testenv.Env) string { return strings.TrimSuffix(env.Config.Server.PublicURL, "/") }

// keyLoginPage signs in with the password and opens the key step.
func keyLoginPage(t *testing.T, b *browser) page {
	t.Helper()
	p := b.login(testldap.Alice)
	if !strings.Contains(p.body, `action="/mfa/key"`) {
		p = b.get("/mfa/key?tx=" + url.QueryEscape(p.hidden(t, "tx")))
	}
	if p.status != http.StatusOK || !strings.Contains(p.body, `action="/mfa/key"`) {
		t.Fatalf("expected the security-key step, got status %d:\n%s", p.status, p.body)
	}
	return p
}

func submitKey(b *browser, p page, credential string) page {
	return b.post("/mfa/key", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}, "tx": {p.hidden(b.t, "tx")},
		"credential": {credential}})
}

func auditTypes(t *testing.T, env *testenv.Env, user string) []store.AuditEvent {
	t.Helper()
	events, err := env.DB.ListAudit(context.Background(), store.AuditFilter{Subject: user, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func hasAudit(events []store.AuditEvent, typ, key, value string) bool {
	return slices.ContainsFunc(events, func(e store.AuditEvent) bool {
		return e.Type == typ && (key == "" || e.Detail[key] == value)
	})
}

func TestRegisterKeyThenLoginWithIt(t *testing.T) {
	env := keyEnv(t)
	b := newBrowser(t, env)
	b.login(testldap.Alice)
	key := newSoftKey(t, "localhost")
	p := b.registerKey(key, "YubiKey", origin(env))
	if p.status != http.StatusOK || !strings.Contains(p.body, "otp.complete") && !strings.Contains(p.body, "設定が完了しました") {
		t.Fatalf("registration: status %d\n%s", p.status, p.body)
	}
	creds, err := env.DB.WebAuthnCredentials(context.Background(), "alice")
	if err != nil || len(creds) != 1 || creds[0].Name != "YubiKey" {
		t.Fatalf("stored credentials = %+v, %v", creds, err)
	}
	list := b.get("/user/otp/keys")
	if !strings.Contains(list.body, "YubiKey") || !strings.Contains(list.body, "<code>hwk</code>") {
		t.Fatalf("the keys tab does not list the key:\n%s", list.body)
	}

	// A new browser: password, then the key (the only factor, so the
	// default one).
	b2 := newBrowser(t, env)
	lp := keyLoginPage(t, b2)
	done := b2.follow(submitKey(b2, lp, key.get(t, lp.options(t), origin(env))))
	if done.status != http.StatusOK || !strings.Contains(done.body, "<code>hwk</code>") || !strings.Contains(done.body, "<code>mfa</code>") {
		t.Fatalf("after the key: status %d\n%s", done.status, done.body)
	}
	if c, _ := env.DB.GetWebAuthnCredential(context.Background(), creds[0].ID); c.SignCount != 1 || c.LastUsed.IsZero() {
		t.Fatalf("use not recorded: %+v", c)
	}
	if !hasAudit(auditTypes(t, env, "alice"), "mfa_success", "method", "webauthn") {
		t.Fatal("no mfa_success audit event with method webauthn")
	}
}

// TestKeyAssertionRefused: an assertion made for another origin (a
// phishing page relaying the ceremony), one whose counter did not grow (a
// cloned key or a replay), and a replayed answer are all refused.
func TestKeyAssertionRefused(t *testing.T) {
	env := keyEnv(t)
	b := newBrowser(t, env)
	b.login(testldap.Alice)
	key := newSoftKey(t, "localhost")
	b.registerKey(key, "Key", origin(env))
	ok := func(b *browser) {
		lp := keyLoginPage(t, b)
		if p := submitKey(b, lp, key.get(t, lp.options(t), origin(env))); p.status != http.StatusSeeOther {
			t.Fatalf("genuine assertion: status %d\n%s", p.status, p.body)
		}
	}
	ok(newBrowser(t, env)) // counter now 1

	tests := []struct {
		name   string
		answer func(options string) string
		reason string
	}{
		{"other origin", func(o string) string { return key.get(t, o, "https://idp.evil.example") }, "origin"},
		{"other port", func(o string) string { return key.get(t, o, "http://localhost:1") }, "origin"},
		{"counter not increased (clone)", func(o string) string { return key.getAt(t, o, origin(env), 1) }, "cloned"},
		{"counter went back", func(o string) string { return key.getAt(t, o, origin(env), 0) }, "cloned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t, env)
			lp := keyLoginPage(t, b)
			p := submitKey(b, lp, tt.answer(lp.options(t)))
			if p.status != http.StatusBadRequest || !strings.Contains(p.body, "could not be verified") {
				t.Fatalf("status %d, want 400 with the refusal\n%s", p.status, p.body)
			}
			if !hasAudit(auditTypes(t, env, "alice"), "mfa_failure", "reason", tt.reason) {
				t.Fatalf("no mfa_failure audit with reason %q", tt.reason)
			}
			// The refused browser is not signed in with the factor.
			if u := b.get("/user/"); u.status != http.StatusSeeOther {
				t.Fatalf("/user/ after a refused key: status %d", u.status)
			}
		})
	}

	t.Run("replayed answer", func(t *testing.T) {
		b := newBrowser(t, env)
		lp := keyLoginPage(t, b)
		answer := key.get(t, lp.options(t), origin(env))
		if p := submitKey(b, lp, answer); p.status != http.StatusSeeOther {
			t.Fatalf("first use: status %d\n%s", p.status, p.body)
		}
		// Another browser signs in with the password and sends the captured answer.
		b2 := newBrowser(t, env)
		lp2 := keyLoginPage(t, b2)
		if p := submitKey(b2, lp2, answer); p.status != http.StatusBadRequest {
			t.Fatalf("replay: status %d, want 400\n%s", p.status, p.body)
		}
	})
}

// TestParallelAssertionPassesOnce sends one assertion twice at the same
// time in the same session: the single-use ceremony and the
// compare-and-set update let at most one through.
func TestParallelAssertionPassesOnce(t *testing.T) {
	env := keyEnv(t)
	b := newBrowser(t, env)
	b.login(testldap.Alice)
	key := newSoftKey(t, "localhost")
	b.registerKey(key, "Key", origin(env))

	successes := func() int {
		n := 0
		for _, e := range auditTypes(t, env, "alice") {
			if e.Type == "mfa_success" && e.Detail["method"] == "webauthn" {
				n++
			}
		}
		return n
	}
	for round := range 3 {
		b := newBrowser(t, env)
		lp := keyLoginPage(t, b)
		answer := key.get(t, lp.options(t), origin(env))
		before := successes()
		creds, _ := env.DB.WebAuthnCredentials(context.Background(), "alice")
		var wg sync.WaitGroup
		statuses := make([]int, 4)
		for i := range statuses {
			wg.Go(func() { statuses[i] = submitKey(b, lp, answer).status })
		}
		wg.Wait()
		// A request that finds the session already past the factor step is
		// sent on (303) without checking anything; what counts is how many
		// assertions were accepted.
		if got := successes() - before; got != 1 {
			t.Fatalf("round %d: %d of %d parallel submissions were accepted (statuses %v), want exactly 1", round, got, len(statuses), statuses)
		}
		after, _ := env.DB.WebAuthnCredentials(context.Background(), "alice")
		if after[0].Uses != creds[0].Uses+1 {
			t.Fatalf("round %d: uses %d -> %d, want one more", round, creds[0].Uses, after[0].Uses)
		}
	}
}

// TestKeyMailsAndClearing: registration and removal are mailed to the
// registered address; clearing the user's factors (staff) and the reset
// remove the keys.
func TestKeyMailsAndClearing(t *testing.T) {
	env := keyEnv(t)
	ctx := context.Background()
	b := newBrowser(t, env)
	b.login(testldap.Alice)
	addr := "alice.private@example.org"
	b.registerEmail(addr)
	key := newSoftKey(t, "localhost")
	b.registerKey(key, "iPhone", origin(env))
	if m := testenv.NewestMail(t, env.SMTP, addr, "セキュリティキー・パスキー登録のお知らせ / Notification of a new security key or passkey"); !strings.Contains(m.Text, "iPhone") {
		t.Fatalf("registration mail lacks the key's name:\n%s", m.Text)
	}

	// Remove it from the tab: mailed and audited.
	creds, _ := env.DB.WebAuthnCredentials(ctx, "alice")
	p := b.get("/user/otp/keys")
	p = b.post("/user/otp/keys/remove", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "id": {creds[0].ID}})
	if p.status != http.StatusOK {
		t.Fatalf("remove: status %d\n%s", p.status, p.body)
	}
	if m := testenv.NewestMail(t, env.SMTP, addr, "セキュリティキー・パスキー削除のお知らせ / Notification of a removed security key or passkey"); !strings.Contains(m.Text, "iPhone") {
		t.Fatalf("removal mail lacks the key's name:\n%s", m.Text)
	}
	if left, _ := env.DB.WebAuthnCredentials(ctx, "alice"); len(left) != 0 {
		t.Fatalf("keys left after removal: %v", left)
	}

	t.Run("staff clear factors", func(t *testing.T) {
		b.registerKey(newSoftKey(t, "localhost"), "YubiKey", origin(env))
		// The console's lookup lists the key.
		st, err := env.App.AccountStatus(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(st.Factors, func(f idp.FactorInfo) bool {
			return f.Method == idp.MethodSecurityKey && strings.HasPrefix(f.Detail, "YubiKey") && !f.EnrolledAt.IsZero()
		}) {
			t.Fatalf("account status lacks the key: %+v", st.Factors)
		}
		// As the console calls it: within a request, with a session.
		sctx, err := env.App.Sessions().Load(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.App.ClearFactors(sctx, testldap.Admin.ID, "alice"); err != nil {
			t.Fatal(err)
		}
		if left, _ := env.DB.WebAuthnCredentials(ctx, "alice"); len(left) != 0 {
			t.Fatalf("keys left after clearing factors: %v", left)
		}
		if !hasAudit(auditTypes(t, env, "alice"), "webauthn_removed", "reason", "factors_cleared") {
			t.Fatal("no webauthn_removed audit event")
		}
		testenv.NewestMail(t, env.SMTP, addr, "ワンタイムパスワード設定初期化のお知らせ / Notification of one time password settings initialization")
	})

	t.Run("reset", func(t *testing.T) {
		b := newBrowser(t, env)
		b.login(testldap.Alice)
		b.registerEmail(addr)
		b.registerKey(newSoftKey(t, "localhost"), "Backup key", origin(env))
		r := newBrowser(t, env)
		p := r.follow(r.get("/reset"))
		p = r.follow(r.post("/reset/login", url.Values{"csrf_token": {p.hidden(t, "csrf_token")},
			"username": {"alice"}, "password": {testldap.Alice.Password}}))
		p = r.follow(r.post("/reset/init", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}}))
		code := env.CodeFrom(addr, testenv.ResetSubject)
		p = r.follow(r.post("/reset/confirm", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "code": {code}}))
		if left, _ := env.DB.WebAuthnCredentials(ctx, "alice"); len(left) != 0 {
			t.Fatalf("keys left after the reset (page status %d): %v\n%s", p.status, left, p.body)
		}
	})
}

// TestPasskeySignIn: with mfa.webauthn.passwordless a discoverable
// credential signs in without a password, and the directory is still
// asked: an account disabled there is refused.
func TestPasskeySignIn(t *testing.T) {
	env := testenv.New(t, testenv.Localhost, testenv.RequireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.MFA.WebAuthn.Passwordless = true
	})
	b := newBrowser(t, env)
	b.login(testldap.Alice)
	key := newSoftKey(t, "localhost")
	b.registerKey(key, "Passkey", origin(env))

	passkey := func(b *browser) page {
		t.Helper()
		p := b.follow(b.get("/user/"))
		if !strings.Contains(p.body, `href="/login/passkey?tx=`) {
			t.Fatalf("the login page offers no passkey:\n%s", p.body)
		}
		p = b.get("/login/passkey?tx=" + url.QueryEscape(p.hidden(t, "tx")))
		if p.status != http.StatusOK {
			t.Fatalf("passkey page: status %d\n%s", p.status, p.body)
		}
		return b.post("/login/passkey", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")},
			"credential": {key.get(t, p.options(t), origin(env))}})
	}

	b2 := newBrowser(t, env)
	done := b2.follow(passkey(b2))
	if done.status != http.StatusOK || !strings.Contains(done.body, "<code>hwk</code>") || strings.Contains(done.body, "<code>pwd</code>") {
		t.Fatalf("passkey sign-in: status %d\n%s", done.status, done.body)
	}

	env.LDAP.Modify(t, "dn: "+testldap.Alice.DN+"\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n")
	b3 := newBrowser(t, env)
	p := passkey(b3)
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Signing in with the passkey did not work") {
		t.Fatalf("disabled account: status %d, want 401\n%s", p.status, p.body)
	}
	if u := b3.get("/user/"); u.status != http.StatusSeeOther {
		t.Fatalf("/user/ after a refused passkey: status %d", u.status)
	}
	if !hasAudit(auditTypes(t, env, "alice"), "login_failed", "reason", "account") {
		t.Fatal("no login_failed audit event with reason account")
	}
}

// TestPasskeySignInOff: without mfa.webauthn.passwordless there is no
// passkey sign-in at all.
func TestPasskeySignInOff(t *testing.T) {
	env := keyEnv(t)
	b := newBrowser(t, env)
	p := b.follow(b.get("/user/"))
	if strings.Contains(p.body, "/login/passkey") {
		t.Fatal("the login page offers a passkey with passwordless off")
	}
	if p := b.get("/login/passkey?tx=" + url.QueryEscape(p.hidden(t, "tx"))); p.status != http.StatusNotFound {
		t.Fatalf("/login/passkey with passwordless off: status %d, want 404", p.status)
	}
}

// TestRecoveryCodeForLostKey: a user whose only factor is a lost key signs
// in with a recovery code from the key page; a wrong code leads back to it.
func TestRecoveryCodeForLostKey(t *testing.T) {
	env := keyEnv(t)
	b := newBrowser(t, env)
	b.login(testldap.Alice)
	p := b.registerKey(newSoftKey(t, "localhost"), "Lost key", origin(env))
	codes := regexp.MustCompile(`<li><code>([^<]+)</code></li>`).FindAllStringSubmatch(p.body, -1)
	if len(codes) == 0 {
		t.Fatalf("no recovery codes shown with the first key:\n%s", p.body)
	}

	b2 := newBrowser(t, env)
	lp := keyLoginPage(t, b2)
	if !strings.Contains(lp.body, `action="/mfa/recovery"`) {
		t.Fatal("the key page offers no recovery code")
	}
	wrong := b2.post("/mfa/recovery", url.Values{"csrf_token": {lp.hidden(t, "csrf_token")}, "tx": {lp.hidden(t, "tx")},
		"recovery_code": {"0000-0000-00"}})
	if wrong.status != http.StatusSeeOther || !strings.HasPrefix(wrong.location, "/mfa/key?tx=") {
		t.Fatalf("wrong recovery code: status %d Location %q\n%s", wrong.status, wrong.location, wrong.body)
	}
	lp = b2.follow(wrong)
	done := b2.follow(b2.post("/mfa/recovery", url.Values{"csrf_token": {lp.hidden(t, "csrf_token")}, "tx": {lp.hidden(t, "tx")},
		"recovery_code": {html.UnescapeString(codes[0][1])}}))
	if done.status != http.StatusOK || !strings.Contains(done.body, "<code>mfa</code>") {
		t.Fatalf("recovery code: status %d\n%s", done.status, done.body)
	}
}

// TestKeyFailuresSpendTheBudget: refused keys count against the failure
// budgets the codes share; once the account-wide ceiling is spent from
// other browsers, even a genuine key in a new one waits.
func TestKeyFailuresSpendTheBudget(t *testing.T) {
	env := testenv.New(t, testenv.Localhost, testenv.RequireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.MFA.Email.FailureBudget.Limit = 2
		c.MFA.Email.AccountFailureLimit = 2
	})
	b := newBrowser(t, env)
	b.login(testldap.Alice)
	key := newSoftKey(t, "localhost")
	b.registerKey(key, "Key", origin(env))
	for i := range 2 {
		b := newBrowser(t, env)
		lp := keyLoginPage(t, b)
		if p := submitKey(b, lp, key.get(t, lp.options(t), "https://phish.example")); p.status != http.StatusBadRequest {
			t.Fatalf("refusal %d: status %d", i, p.status)
		}
	}
	b2 := newBrowser(t, env)
	lp := keyLoginPage(t, b2)
	p := submitKey(b2, lp, key.get(t, lp.options(t), origin(env)))
	if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "Too many failed attempts") {
		t.Fatalf("genuine key after the budget is spent: status %d, want 429\n%s", p.status, p.body)
	}
}

// TestAAGUIDAllowList: with mfa.webauthn.allowed_aaguids only the listed
// models register.
func TestAAGUIDAllowList(t *testing.T) {
	const campusKey = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
	env := testenv.New(t, testenv.Localhost, testenv.RequireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.MFA.WebAuthn.AllowedAAGUIDs = []string{campusKey}
	})
	b := newBrowser(t, env)
	b.login(testldap.Alice)
	other := newSoftKey(t, "localhost")
	other.aaguid = []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	if p := b.registerKey(other, "Own key", origin(env)); p.status != http.StatusBadRequest || !strings.Contains(p.body, "This model of security key cannot be registered") {
		t.Fatalf("unlisted model: status %d\n%s", p.status, p.body)
	}
	issued := newSoftKey(t, "localhost")
	issued.aaguid = []byte{0xcb, 0x69, 0x48, 0x1e, 0x8f, 0xf7, 0x40, 0x39, 0x93, 0xec, 0x0a, 0x27, 0x29, 0xa1, 0x54, 0xa8}
	if p := b.registerKey(issued, "Campus key", origin(env)); p.status != http.StatusOK {
		t.Fatalf("listed model: status %d\n%s", p.status, p.body)
	}
	creds, _ := env.DB.WebAuthnCredentials(context.Background(), "alice")
	if len(creds) != 1 || creds[0].AAGUID != campusKey {
		t.Fatalf("stored: %+v", creds)
	}
}
