package idp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

const (
	otpSubject   = testenv.OTPSubject
	resetSubject = testenv.ResetSubject
)

var requireMFA = testenv.RequireMFA

var codeRe = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)

// codeFrom reads the newest mail to addr with the given subject and returns
// the code in its body.
func (e *env) codeFrom(addr, subject string) string {
	e.t.Helper()
	m := testenv.NewestMail(e.t, e.smtp, addr, subject)
	if m.From != e.cfg.Mail.From && !strings.Contains(m.From, e.cfg.Mail.From) {
		e.t.Errorf("mail From %q, want %q", m.From, e.cfg.Mail.From)
	}
	return testenv.CodeIn(e.t, m)
}

// mailCount counts mails to addr with a subject.
func (e *env) mailCount(addr, subject string) int { return testenv.MailsTo(e.smtp, addr, subject) }

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

func hiddenOr(p page, name string) string {
	for _, m := range hiddenRe.FindAllStringSubmatch(p.body, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	return ""
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

func TestEmailOTPSetupLoginAndReset(t *testing.T) {
	e := newEnv(t, requireMFA)
	u := testldap.Alice
	b := e.browser()

	// Step 2 of the manual: first login leads to the setup, then on.
	p := b.enroll(u, "alice.private@gmail.com")
	if !strings.Contains(p.body, "Continue signing in") {
		t.Fatalf("no way on to the waiting login:\n%s", p.body)
	}
	if !signedIn(b.follow(b.get("/user/"))) {
		t.Fatal("not signed in after enrolling")
	}
	b.logout()

	// Login with the mailed code.
	p = b.mfaLogin(u)
	if !strings.Contains(p.body, mfa.MaskAddress("alice.private@gmail.com")) {
		t.Errorf("MFA page does not show the masked address:\n%s", p.body)
	}
	code := e.codeFrom("alice.private@gmail.com", otpSubject)
	p = b.follow(b.submitCode(p, code, false))
	if !signedIn(p) || !strings.Contains(p.body, "otp") {
		t.Fatalf("login with the code failed: %d\n%s", p.status, p.body)
	}
	b.logout()

	// Reset (①–⑮): password again, Initialize, confirmation code, new address.
	nb := e.browser()
	p = nb.resetWithMail(u, "alice.private@gmail.com")
	if !strings.Contains(p.body, "register a new address") {
		t.Fatalf("after reset, expected the setup page:\n%s", p.body)
	}
	p = nb.registerAddress(p, "alice.new@example.org")
	if !strings.Contains(p.body, "settings are complete") {
		t.Fatalf("setup after reset did not complete:\n%s", p.body)
	}
	if e.mailCount("alice.private@gmail.com", "ワンタイムパスワード設定初期化のお知らせ / Notification of one time password settings initialization") != 1 {
		t.Error("the old address was not told of the reset")
	}
	// The next login uses the new address.
	p = e.browser().mfaLogin(u)
	if !strings.Contains(p.body, mfa.MaskAddress("alice.new@example.org")) {
		t.Errorf("MFA page after reset shows the wrong address:\n%s", p.body)
	}
}

// resetWithMail runs the reset flow up to the settings page using the code
// mailed to registered.
func (b *browser) resetWithMail(u testldap.User, registered string) page {
	b.t.Helper()
	p := b.startReset(u)
	if !strings.Contains(p.body, "Initializing One-Time Password Settings") {
		b.t.Fatalf("expected the confirmation code page:\n%s", p.body)
	}
	if !strings.Contains(p.body, u.ID) {
		b.t.Errorf("code page lacks the login ID")
	}
	code := b.env.codeFrom(registered, resetSubject)
	return b.follow(b.post("/reset/confirm", url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}, "code": {code}}))
}

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

func TestLoginCodeRefusals(t *testing.T) {
	const addr = "bob.home@example.net"
	cases := []struct {
		name string
		// attempt returns the code to type on the MFA page p of browser b.
		attempt func(t *testing.T, e *env, b *browser, p page) string
		want    string
	}{
		{"expired", func(t *testing.T, e *env, b *browser, p page) string {
			code := e.codeFrom(addr, otpSubject)
			e.clock.Advance(e.cfg.MFA.Email.CodeLifetime)
			return code
		}, "has expired"},
		{"sixth try", func(t *testing.T, e *env, b *browser, p page) string {
			code := e.codeFrom(addr, otpSubject)
			for i := 0; i < e.cfg.MFA.Email.MaxTriesPerCode; i++ {
				b.submitCode(p, wrong(code), false)
			}
			return code
		}, "no longer valid"},
		{"code of another purpose", func(t *testing.T, e *env, b *browser, p page) string {
			// A settings code of the same user, from a fully signed-in browser.
			e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
			s := e.browser()
			sp := s.mfaLogin(testldap.Bob)
			s.follow(s.submitCode(sp, e.codeFrom(addr, otpSubject), false))
			sp = s.follow(s.get("/user/otp"))
			s.post("/user/otp/email/send", url.Values{"csrf_token": {sp.hidden(t, "csrf_token")}, "address": {"bob.other@example.net"}})
			return e.codeFrom("bob.other@example.net", otpSubject)
		}, "is incorrect"},
		{"code of another user", func(t *testing.T, e *env, b *browser, p page) string {
			// Login codes are user-wide (another login of Bob may use his),
			// never another user's.
			const other = "alice.x@example.net"
			e.browser().enroll(testldap.Alice, other)
			e.browser().mfaLogin(testldap.Alice)
			return e.codeFrom(other, otpSubject)
		}, "is incorrect"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, requireMFA)
			e.browser().enroll(testldap.Bob, addr)
			b := e.browser()
			p := b.mfaLogin(testldap.Bob)
			code := tc.attempt(t, e, b, p)
			r := b.submitCode(p, code, false)
			if !strings.Contains(r.body, tc.want) || signedIn(b.follow(b.get("/user/"))) {
				t.Fatalf("status %d, want a refusal containing %q:\n%s", r.status, tc.want, r.body)
			}
		})
	}
}

func wrong(code string) string {
	if strings.HasPrefix(code, "0") {
		return "1" + code[1:]
	}
	return "0" + code[1:]
}

func TestReusedLoginCodeIsRefused(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "carol.x@example.net"
	e.browser().enroll(testldap.Alice, addr)
	b := e.browser()
	p := b.mfaLogin(testldap.Alice)
	code := e.codeFrom(addr, otpSubject)
	if !signedIn(b.follow(b.submitCode(p, code, false))) {
		t.Fatal("first use failed")
	}
	// Same code again in a new login of another browser.
	b2 := e.browser()
	p2 := b2.mfaLogin(testldap.Alice)
	if r := b2.submitCode(p2, code, false); signedIn(b2.follow(r)) {
		t.Fatal("a used code signed in again")
	}
}

// Parallel wrong codes in one session spend exactly the session's budget
// (spent in the store before the check): the rest are refused as locked and
// do not reach the account-wide ceiling.
func TestParallelWrongCodesConsumeExactBudget(t *testing.T) {
	const budget = 20
	e := newEnv(t, requireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.MFA.Email.FailureBudget = config.Budget{Limit: budget, Window: time.Hour}
		c.MFA.Email.MaxTriesPerCode = 10
	})
	const addr = "par@example.net"
	e.browser().enroll(testldap.Alice, addr)
	b := e.browser()
	p := b.mfaLogin(testldap.Alice)
	code := e.codeFrom(addr, otpSubject)
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	locked := 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.submitCode(p, wrong(code), false)
			if strings.Contains(r.body, "Too many failed attempts") {
				mu.Lock()
				locked++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if locked != n-budget {
		t.Fatalf("%d of %d parallel tries refused as locked, want exactly %d", locked, n, n-budget)
	}
	c, err := e.db.GetCounter(context.Background(), "mfa:fail:"+testldap.Alice.ID, e.clock.Now())
	if err != nil || c.Count != budget {
		t.Fatalf("account-wide ceiling used %d (err %v), want exactly %d", c.Count, err, budget)
	}
}

func TestResendKeepsBudgetAndHonoursCooldown(t *testing.T) {
	e := newEnv(t, requireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.MFA.Email.FailureBudget = config.Budget{Limit: 3, Window: time.Hour}
	})
	const addr = "resend@example.net"
	e.browser().enroll(testldap.Alice, addr)
	b := e.browser()
	p := b.mfaLogin(testldap.Alice)
	code := e.codeFrom(addr, otpSubject)
	b.submitCode(p, wrong(code), false)
	b.submitCode(p, wrong(code), false)

	resend := func() page {
		return b.post("/mfa/send", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")}})
	}
	if r := resend(); r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "wait a moment") {
		t.Fatalf("resend inside the cooldown: %d\n%s", r.status, r.body)
	}
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	before := e.mailCount(addr, otpSubject)
	b.follow(resend())
	if e.mailCount(addr, otpSubject) != before+1 {
		t.Fatal("resend after the cooldown sent no mail")
	}
	code = e.codeFrom(addr, otpSubject)
	b.submitCode(p, wrong(code), false) // third failure spends the budget
	r := b.submitCode(p, code, false)
	if signedIn(b.follow(r)) || !strings.Contains(r.body, "Too many failed attempts") {
		t.Fatalf("the right code passed a spent budget: %d\n%s", r.status, r.body)
	}
	locks, _ := e.db.ListAudit(context.Background(), store.AuditFilter{Subject: testldap.Alice.ID, Type: "mfa_locked"})
	if len(locks) == 0 {
		t.Error("no mfa_locked audit event")
	}
}

func TestSendCapPerHour(t *testing.T) {
	e := newEnv(t, requireMFA, func(c *config.Config, _ *ldapstore.Config) { c.MFA.Email.SendsPerHour = 2 })
	b := e.browser()
	p := b.login(testldap.Alice.ID, testldap.Alice.Password)
	send := func(addr string) page {
		return b.post("/user/otp/email/send", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")}, "address": {addr}})
	}
	for i := 0; i < 2; i++ {
		if r := send(fmt.Sprintf("cap%d@example.net", i)); r.status != http.StatusSeeOther {
			t.Fatalf("send %d: %d", i, r.status)
		}
		e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	}
	if r := send("cap3@example.net"); r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "Too many codes") {
		t.Fatalf("third send in an hour: %d\n%s", r.status, r.body)
	}
}

func TestBlockedAndInvalidAddresses(t *testing.T) {
	e := newEnv(t, requireMFA)
	b := e.browser()
	p := b.login(testldap.Alice.ID, testldap.Alice.Password)
	for _, tc := range []struct{ addr, want string }{
		{"x@kyoto-u.ac.jp", "cannot be registered"},
		{"X@Sub.KYOTO-U.ac.jp", "cannot be registered"},
		{"someone@st.kyoto-u.ac.jp", "cannot be registered"},
		{"not an address", "not valid"},
		{"Name <a@b.example>", "not valid"},
	} {
		r := b.post("/user/otp/email/send", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")}, "address": {tc.addr}})
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, tc.want) {
			t.Errorf("%q: status %d, want 400 with %q", tc.addr, r.status, tc.want)
		}
		if !strings.Contains(r.body, `lang="ja"`) {
			t.Errorf("%q: error page is not bilingual", tc.addr)
		}
	}
	if n := len(e.smtp.Messages()); n != 0 {
		t.Fatalf("%d mails sent to refused addresses", n)
	}
}

func TestTrustedBrowser(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "trust@example.net"
	e.browser().enroll(testldap.Alice, addr)
	e.browser().enroll(testldap.Bob, "bob.trust@example.net")

	b := e.browser()
	p := b.mfaLogin(testldap.Alice)
	if !signedIn(b.follow(b.submitCode(p, e.codeFrom(addr, otpSubject), true))) {
		t.Fatal("login with trust failed")
	}
	b.logout()
	if p := b.login(testldap.Alice.ID, testldap.Alice.Password); !signedIn(p) {
		t.Fatalf("trusted browser still asked for MFA:\n%s", p.body)
	}
	b.logout()
	// Another user on the same browser is not trusted.
	if p := b.login(testldap.Bob.ID, testldap.Bob.Password); signedIn(p) {
		t.Fatal("alice's trusted browser skipped bob's MFA")
	}
	// A different browser is not trusted.
	if p := e.browser().login(testldap.Alice.ID, testldap.Alice.Password); signedIn(p) {
		t.Fatal("an untrusted browser skipped MFA")
	}
	// After a reset, the trust is gone.
	e.browser().resetWithMail(testldap.Alice, addr)
	b.logout()
	if p := b.login(testldap.Alice.ID, testldap.Alice.Password); signedIn(p) {
		t.Fatal("trusted browser survived the reset")
	}
}

func TestResetGrantCannotCompleteALogin(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "grant@example.net"
	e.browser().enroll(testldap.Alice, addr)
	other := e.browser()
	other.mfaLogin(testldap.Alice) // a second browser mid-login
	b := e.browser()
	p := b.resetWithMail(testldap.Alice, addr)
	if !strings.Contains(p.body, "Address for email-authentication") {
		t.Fatalf("grant does not reach the setup page:\n%s", p.body)
	}
	// The grant is no login: the account page and the login still ask for the password.
	if p := b.follow(b.get("/user/")); signedIn(p) || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("the reset grant reached the account page:\n%s", p.body)
	}
	// The grant still allows exactly the setup.
	p = b.registerAddress(b.follow(b.get("/user/otp")), "grant.new@example.net")
	if !strings.Contains(p.body, "settings are complete") {
		t.Fatalf("setup with the grant failed:\n%s", p.body)
	}
	// Spent: neither the settings nor the account page are reachable now.
	if p := b.follow(b.get("/user/otp")); !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("the spent grant still opens the settings:\n%s", p.body)
	}
}

func TestSMTPOutageLosesNothing(t *testing.T) {
	e := newEnv(t, requireMFA)
	b := e.browser()
	p := b.login(testldap.Alice.ID, testldap.Alice.Password)
	e.smtp.Stop()
	const addr = "outage@example.net"
	r := b.post("/user/otp/email/send", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")}, "address": {addr}})
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "could not be sent") || !strings.Contains(r.body, "メールを送信できませんでした") {
		t.Fatalf("SMTP down: status %d\n%s", r.status, r.body)
	}
	if !strings.Contains(r.body, `value="`+addr+`"`) {
		t.Error("the typed address was lost")
	}
	if c, _ := e.db.GetCounter(context.Background(), "mfa:fail:"+testldap.Alice.ID, e.clock.Now()); c.Count != 0 {
		t.Errorf("outage spent %d of the failure budget", c.Count)
	}
	events, _ := e.db.ListAudit(context.Background(), store.AuditFilter{Subject: testldap.Alice.ID, Type: "mail_failed"})
	if len(events) != 1 {
		t.Errorf("mail_failed audit events: %d", len(events))
	}
	e.smtp.Restart(t)
	// No cooldown was spent by the failed send: it works at once.
	p = b.registerAddress(r, addr)
	if !strings.Contains(p.body, "settings are complete") {
		t.Fatalf("after SMTP restart: %d\n%s", p.status, p.body)
	}
}

func TestNoCodeOrAddressInLogs(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "secret.person@example.net"
	e.browser().enroll(testldap.Alice, addr)
	b := e.browser()
	p := b.mfaLogin(testldap.Alice)
	code := e.codeFrom(addr, otpSubject)
	b.submitCode(p, wrong(code), false)
	b.follow(b.submitCode(p, code, false))
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("no logs captured")
	}
	for _, m := range e.smtp.Messages() {
		if c := codeRe.FindStringSubmatch(m.Text); c != nil && strings.Contains(logs, c[1]) {
			t.Errorf("a code (%s) appears in the logs", c[1])
		}
	}
	for _, secret := range []string{addr, "secret.person", testldap.Alice.Password} {
		if strings.Contains(logs, secret) {
			t.Errorf("%q appears in the logs", secret)
		}
	}
}

func TestPasswordOnlySessionReachesNothing(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "pwonly@example.net"
	e.browser().enroll(testldap.Alice, addr)
	b := e.browser()
	b.mfaLogin(testldap.Alice) // password done, factor pending
	for _, path := range []string{"/user/", "/user/otp"} {
		p := b.follow(b.get(path))
		if signedIn(p) || !strings.Contains(p.body, "Multi-Factor Authentication : Email") {
			t.Errorf("%s with only a password: %d\n%s", path, p.status, p.body)
		}
	}
}

func TestAddressChangeNotifiesOldAddressAndRevokesTrust(t *testing.T) {
	e := newEnv(t, requireMFA)
	const oldAddr, newAddr = "old.addr@example.net", "new.addr@example.net"
	e.browser().enroll(testldap.Alice, oldAddr)
	b := e.browser()
	p := b.mfaLogin(testldap.Alice)
	b.follow(b.submitCode(p, e.codeFrom(oldAddr, otpSubject), true))
	p = b.follow(b.get("/user/"))
	if !strings.Contains(p.body, "Chrome") && !strings.Contains(p.body, "Browser") {
		t.Fatalf("the account page does not list the trusted browser:\n%s", p.body)
	}
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	p = b.registerAddress(b.follow(b.get("/user/otp")), newAddr)
	if !strings.Contains(p.body, "settings are complete") {
		t.Fatalf("address change failed:\n%s", p.body)
	}
	if e.mailCount(oldAddr, "メール認証用アドレス変更のお知らせ / Notification of a change of your address for email-authentication") != 1 {
		t.Error("the old address was not told of the change")
	}
	if p := b.follow(b.get("/user/")); !strings.Contains(p.body, "No trusted browsers") {
		t.Errorf("trusted browsers survived the address change:\n%s", p.body)
	}
}

func TestRevokeTrustedBrowserFromAccountPage(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "revoke@example.net"
	e.browser().enroll(testldap.Alice, addr)
	b := e.browser()
	p := b.mfaLogin(testldap.Alice)
	b.follow(b.submitCode(p, e.codeFrom(addr, otpSubject), true))
	p = b.follow(b.get("/user/"))
	p = b.follow(b.post("/user/trusted/revoke", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "id": {"all"}}))
	if !strings.Contains(p.body, "trusted browsers were revoked") || !strings.Contains(p.body, "No trusted browsers") {
		t.Fatalf("revoke: %d\n%s", p.status, p.body)
	}
	b.logout()
	if p := b.login(testldap.Alice.ID, testldap.Alice.Password); signedIn(p) {
		t.Fatal("a revoked browser still skipped MFA")
	}
}

func TestResetEndsOtherSessions(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "sessions@example.net"
	e.browser().enroll(testldap.Alice, addr)
	other := e.browser()
	p := other.mfaLogin(testldap.Alice)
	if !signedIn(other.follow(other.submitCode(p, e.codeFrom(addr, otpSubject), false))) {
		t.Fatal("setup login failed")
	}
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	e.browser().resetWithMail(testldap.Alice, addr)
	if signedIn(other.follow(other.get("/user/"))) {
		t.Fatal("another browser's session survived the reset")
	}
}

func TestOptionalEnrollmentLetsPasswordOnlyUsersIn(t *testing.T) {
	e := newEnv(t) // optional enrollment
	if p := e.browser().login(testldap.Bob.ID, testldap.Bob.Password); !signedIn(p) {
		t.Fatalf("optional enrollment: a user without a factor was not let in:\n%s", p.body)
	}
	e.cfg.MFA.Enrollment = config.EnrollmentRequired
	if p := e.browser().login(testldap.Bob.ID, testldap.Bob.Password); signedIn(p) || !strings.Contains(p.body, "One-Time Password Settings") {
		t.Fatalf("required enrollment: a user without a factor got in:\n%s", p.body)
	}
}
