package admin_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

const (
	consoleTitle = "Helpdesk and admin console"
	resetDoneSub = "ワンタイムパスワード設定初期化のお知らせ / Notification of one time password settings initialization"
)

var issuedCodeRe = regexp.MustCompile(`<output class="issued-code">(\d{6,10})</output>`)

// openConsole signs a staff member in to /admin/ the way a browser does:
// the console asks for the password, then registers addr as the first
// factor or asks for the code mailed to it, and comes back to /admin/.
func (b *browser) openConsole(u testldap.User, addr string) page {
	b.t.Helper()
	p := b.follow(b.get("/admin/"))
	if !strings.Contains(p.body, `name="password"`) {
		b.t.Fatalf("the console did not ask for the password (%d):\n%s", p.status, p.body)
	}
	p = b.follow(b.submitLogin(p, u.ID, u.Password))
	switch {
	case strings.Contains(p.body, "Address for email-authentication") && strings.Contains(p.body, "/user/otp/email/send"):
		p = b.registerAddress(p, addr)
		next := hrefOf(p, "")
		if next == "" {
			b.t.Fatalf("no way on after enrolling:\n%s", p.body)
		}
		p = b.follow(b.get(next))
	case strings.Contains(p.body, "Multi-Factor Authentication : Email"):
		p = b.follow(b.submitCode(p, b.env.codeFrom(addr, otpSubject), false))
	}
	if p.status != http.StatusOK || !strings.Contains(p.body, consoleTitle) {
		b.t.Fatalf("staff %s did not reach the console (%d):\n%s", u.ID, p.status, p.body)
	}
	return p
}

// adminAction opens the confirmation page of an action and confirms it.
func (b *browser) adminAction(action, id string, extra url.Values) page {
	b.t.Helper()
	p := b.get("/admin/action?" + url.Values{"action": {action}, "id": {id}}.Encode())
	if p.status != http.StatusOK {
		return p
	}
	form := url.Values{"csrf_token": {p.hidden(b.t, "csrf_token")}, "action": {action}, "id": {id}}
	for k, v := range extra {
		form[k] = v
	}
	return b.post("/admin/action", form)
}

// auditOf returns the audit events of a type about subject.
func (e *env) auditOf(typ, subject string) []store.AuditEvent {
	e.t.Helper()
	events, err := e.db.ListAudit(context.Background(), store.AuditFilter{Type: typ, Subject: subject})
	if err != nil {
		e.t.Fatal(err)
	}
	return events
}

func TestHelpdeskCodeCompletesResetForUserWithoutAddress(t *testing.T) {
	e := newEnv(t, requireMFA)
	u := testldap.Alice

	// The user follows the manual: reset login, Initialize; with no
	// address registered the page shows the placeholder and the helpdesk.
	ub := e.browser()
	p := ub.startReset(u)
	for _, want := range []string{"id********@mail2.adm.example.ac.jp", "ICT Support Center", strings.TrimPrefix(e.cfg.Branding.HelpdeskPhone, "+")} {
		if !strings.Contains(p.body, want) {
			t.Errorf("reset page lacks %q", want)
		}
	}

	// The helpdesk looks the caller up and, after the phone check, issues a code.
	hb := e.browser()
	hb.openConsole(testldap.Helpdesk, "helpdesk1.home@example.net")
	look := hb.get("/admin/user?id=" + u.ID)
	if look.status != http.StatusOK || !strings.Contains(look.body, "No second factor is registered") || !strings.Contains(look.body, u.DisplayName) {
		t.Fatalf("lookup of %s: %d\n%s", u.ID, look.status, look.body)
	}
	if r := hb.adminAction("reset-code", u.ID, nil); r.status != http.StatusBadRequest || !strings.Contains(r.body, "tick the box before issuing") {
		t.Fatalf("a code was issued without the phone check being confirmed: %d\n%s", r.status, r.body)
	}
	r := hb.adminAction("reset-code", u.ID, url.Values{"phone_verified": {"yes"}})
	m := issuedCodeRe.FindStringSubmatch(r.body)
	if r.status != http.StatusOK || m == nil {
		t.Fatalf("no code shown: %d\n%s", r.status, r.body)
	}
	code := m[1]
	if strings.Contains(hb.get("/admin/user?id="+u.ID).body, code) {
		t.Error("the code is shown again on the lookup page")
	}

	// The code is Alice's alone: Bob's reset page refuses it.
	bb := e.browser()
	bp := bb.startReset(testldap.Bob)
	if rr := bb.post("/reset/confirm", url.Values{"csrf_token": {bp.hidden(t, "csrf_token")}, "code": {code}}); !strings.Contains(rr.body, "incorrect") {
		t.Fatalf("another user's reset page accepted the code: %d\n%s", rr.status, rr.body)
	}

	// Alice types it into the page that is still open, then registers an address.
	p = ub.follow(ub.post("/reset/confirm", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "code": {code}}))
	if !strings.Contains(p.body, "register a new address") {
		t.Fatalf("the helpdesk code did not complete the reset:\n%s", p.body)
	}
	p = ub.registerAddress(p, "alice.new@example.org")
	if !strings.Contains(p.body, "settings are complete") {
		t.Fatalf("setup after the reset did not complete:\n%s", p.body)
	}
	issued := e.auditOf("helpdesk_reset_code_issued", u.ID)
	if len(issued) != 1 || issued[0].Actor != testldap.Helpdesk.ID || !issued[0].Time.Equal(e.clock.Now()) {
		t.Errorf("issue audit: %+v", issued)
	}
	// The completed reset names the staff member who issued the code.
	if done := e.auditOf("mfa_reset", u.ID); len(done) != 1 || done[0].Detail["via"] != "helpdesk" ||
		done[0].Detail["issued_by"] != testldap.Helpdesk.ID {
		t.Errorf("reset audit: %+v", done)
	}
	if strings.Contains(e.logs.String(), code) {
		t.Error("the issued code appears in the logs")
	}
	// The viewer names the issuer on the completed reset, in words.
	v := hb.get("/admin/audit?type=mfa_reset")
	for _, want := range []string{`<span lang="en">MFA settings initialized</span>`, `<span lang="en">Code issued by</span>: <span translate="no">` + testldap.Helpdesk.ID + `</span>`,
		`<span lang="ja">経路</span> / <span lang="en">Via</span>: <span lang="ja">ヘルプデスク</span>`} {
		if !strings.Contains(v.body, want) {
			t.Errorf("the audit viewer lacks %q", want)
		}
	}
	if strings.Contains(v.body, "issued_by=") || strings.Contains(v.body, ">mfa_reset<") {
		t.Error("the audit viewer shows identifiers instead of words")
	}
}

// adminURLs are every console URL with every method a forger might try.
var adminURLs = []struct{ method, path string }{
	{"GET", "/admin/"},
	{"GET", "/admin"},
	{"GET", "/admin/user?id=bob"},
	{"GET", "/admin/action?action=reset-code&id=bob"},
	{"GET", "/admin/action?action=clear-factors&id=bob"},
	{"GET", "/admin/action?action=no-such-action&id=bob"},
	{"GET", "/admin/audit"},
	{"GET", "/admin/audit?type=login_failed"},
	{"GET", "/admin/audit.csv"},
	{"GET", "/admin/no-such-page"},
	{"POST", "/admin/action"},
	{"POST", "/admin/"},
	{"POST", "/admin/audit"},
	{"PUT", "/admin/action"},
}

func TestNonStaffGetForbiddenOnEveryAdminURL(t *testing.T) {
	e := newEnv(t, requireMFA)
	e.browser().enroll(testldap.Bob, "bob.home@example.net")
	full := e.browser()
	full.enroll(testldap.Alice, "alice.home@example.net")
	if !signedIn(full.follow(full.get("/user/"))) {
		t.Fatal("alice is not signed in")
	}
	halfway := e.browser()
	halfway.mfaLogin(testldap.Bob) // password only, factor pending

	for _, who := range []struct {
		name string
		b    *browser
	}{{"signed-in user", full}, {"password-only session", halfway}} {
		token := who.b.follow(who.b.get("/user/otp")).hidden(t, "csrf_token")
		for _, u := range adminURLs {
			for _, action := range []string{"reset-code", "unlock-password", "unlock-otp", "end-sessions", "clear-factors"} {
				if u.method == "GET" && action != "reset-code" {
					continue // GETs carry their own query
				}
				// A forged post with the user's own, valid form token.
				form := url.Values{"csrf_token": {token}, "action": {action}, "id": {testldap.Bob.ID}, "phone_verified": {"yes"}}
				req, _ := http.NewRequest(u.method, e.srv.URL+u.path, nil)
				if u.method != "GET" {
					req, _ = http.NewRequest(u.method, e.srv.URL+u.path, strings.NewReader(form.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				p := who.b.do(req)
				if p.status >= 300 && p.status < 400 && p.location == "/admin/" {
					p = who.b.follow(p) // the router adds the slash
				}
				if p.status != http.StatusForbidden {
					t.Errorf("%s: %s %s (%s): status %d, want 403\n%s", who.name, u.method, u.path, action, p.status, testenv.LastLines(p.body, 5))
				}
				if strings.Contains(p.body, "form has expired") {
					t.Errorf("%s: %s %s was refused by the CSRF check, not by the role check", who.name, u.method, u.path)
				}
				if !strings.Contains(p.body, "You are not allowed") || !strings.Contains(p.body, "権限がありません") {
					t.Errorf("%s: %s %s: the refusal is not the bilingual forbidden page", who.name, u.method, u.path)
				}
			}
		}
	}
	for _, typ := range []string{"helpdesk_reset_code_issued", "admin_password_unlocked", "admin_otp_unlocked",
		"admin_sessions_ended", "admin_factors_cleared", "admin_user_viewed", "admin_audit_exported"} {
		if ev := e.auditOf(typ, ""); len(ev) != 0 {
			t.Errorf("a non-staff request did %s: %+v", typ, ev)
		}
	}
	if denied := e.auditOf("admin_access_denied", testldap.Alice.ID); len(denied) == 0 || denied[0].Actor != testldap.Alice.ID {
		t.Errorf("refusals are not audited: %+v", denied)
	}
	// Bob's factor is untouched: his next login still asks for it.
	if p := e.browser().login(testldap.Bob.ID, testldap.Bob.Password); !strings.Contains(p.body, "Multi-Factor Authentication : Email") {
		t.Errorf("bob's factor changed:\n%s", p.body)
	}

	// Nobody signed in: a GET leads to the login, a POST is refused.
	anon := e.browser()
	if p := anon.get("/admin/user?id=bob"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/login?tx=") {
		t.Errorf("anonymous GET: %d %q", p.status, p.location)
	}
	if p := anon.post("/admin/action", url.Values{"action": {"unlock-otp"}, "id": {"bob"}}); p.status != http.StatusForbidden {
		t.Errorf("anonymous POST: %d", p.status)
	}
}

func TestHelpdeskCannotClearFactors(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "alice.home@example.net"
	e.browser().enroll(testldap.Alice, addr)
	hb := e.browser()
	hb.openConsole(testldap.Helpdesk, "helpdesk1.home@example.net")

	if p := hb.get("/admin/user?id=alice"); strings.Contains(p.body, "clear-factors") || !strings.Contains(p.body, "unlock-otp") {
		t.Errorf("the helpdesk's lookup page offers the wrong actions:\n%s", p.body)
	}
	if p := hb.get("/admin/action?action=clear-factors&id=alice"); p.status != http.StatusForbidden {
		t.Errorf("helpdesk confirmation page for clear-factors: %d", p.status)
	}
	token := hb.get("/admin/").hidden(t, "csrf_token")
	p := hb.post("/admin/action", url.Values{"csrf_token": {token}, "action": {"clear-factors"}, "id": {"alice"}})
	if p.status != http.StatusForbidden {
		t.Fatalf("helpdesk cleared factors: %d\n%s", p.status, p.body)
	}
	if ev := e.auditOf("admin_factors_cleared", "alice"); len(ev) != 0 {
		t.Fatalf("factors cleared by the helpdesk: %+v", ev)
	}
	if denied := e.auditOf("admin_access_denied", testldap.Helpdesk.ID); len(denied) == 0 || denied[0].Detail["need"] != "admin" {
		t.Errorf("the refusal is not audited: %+v", denied)
	}
	// Nor may the helpdesk act on an admin's account at all.
	if p := hb.get("/admin/action?action=reset-code&id=" + testldap.Admin.ID); p.status != http.StatusForbidden || !strings.Contains(p.body, "higher staff role") {
		t.Errorf("helpdesk acting on an admin: %d\n%s", p.status, p.body)
	}

	// An admin can; the user registers a factor anew and hears of it.
	ab := e.browser()
	ab.openConsole(testldap.Admin, "admin1.home@example.net")
	if p := ab.adminAction("clear-factors", "alice", nil); p.status != http.StatusOK || !strings.Contains(p.body, "second factors have been cleared") {
		t.Fatalf("admin clear-factors: %d\n%s", p.status, p.body)
	}
	if p := e.browser().login(testldap.Alice.ID, testldap.Alice.Password); !strings.Contains(p.body, "/user/otp/email/send") {
		t.Errorf("after clearing, the login does not ask to register a factor:\n%s", p.body)
	}
	if e.mailCount(addr, resetDoneSub) != 1 {
		t.Error("the registered address was not told")
	}
}

func TestEveryStaffActionIsAuditedAndWorks(t *testing.T) {
	e := newEnv(t, requireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.Security.PasswordBudget.PerID = config.Budget{Limit: 3, Window: time.Hour}
		c.MFA.Email.FailureBudget = config.Budget{Limit: 3, Window: time.Hour}
		// The lookup page shows the account-wide ceiling; make one session
		// reach it so the lock is there to see and lift.
		c.MFA.Email.AccountFailureLimit = 3
	})
	const addr = "bob.home@example.net"
	bob := testldap.Bob
	e.browser().enroll(bob, addr)

	// Bob trusts a browser; then his password and his codes get locked.
	trusted := e.browser()
	p := trusted.mfaLogin(bob)
	trusted.follow(trusted.submitCode(p, e.codeFrom(addr, otpSubject), true))
	for i := 0; i < 3; i++ {
		b := e.browser()
		b.submitLogin(b.openLogin(), bob.ID, "wrong")
	}
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	lockedOut := e.browser()
	lp := lockedOut.submitLogin(lockedOut.openLogin(), bob.ID, bob.Password)
	if lp.status != http.StatusTooManyRequests {
		t.Fatalf("password budget not spent: %d", lp.status)
	}

	ab := e.browser()
	ab.openConsole(testldap.Admin, "admin1.home@example.net")
	look := ab.get("/admin/user?id=bob")
	for _, want := range []string{"Email", mfa.MaskAddress(addr), "Trusted browsers", "Failed passwords", "3 / 3", "Locked until", "staff"} {
		if !strings.Contains(look.body, want) {
			t.Errorf("lookup page lacks %q", want)
		}
	}

	// Unlock the password: Bob gets to the MFA page, spends the code budget.
	e.clock.Advance(time.Minute)
	if r := ab.adminAction("unlock-password", "bob", nil); r.status != http.StatusOK || !strings.Contains(r.body, "password lock has been lifted") {
		t.Fatalf("unlock-password: %d\n%s", r.status, r.body)
	}
	mb := e.browser()
	mp := mb.mfaLogin(bob)
	code := e.codeFrom(addr, otpSubject)
	for i := 0; i < 3; i++ {
		mb.submitCode(mp, wrong(code), false)
	}
	if r := mb.submitCode(mp, code, false); !strings.Contains(r.body, "Too many failed attempts") {
		t.Fatalf("code budget not spent:\n%s", r.body)
	}
	if look := ab.get("/admin/user?id=bob"); !strings.Contains(look.body, "Failed one-time passwords") || strings.Count(look.body, "Locked until") != 1 {
		t.Errorf("lookup page does not show the one-time password lock alone:\n%s", look.body)
	}
	e.clock.Advance(time.Minute)
	if r := ab.adminAction("unlock-otp", "bob", nil); r.status != http.StatusOK {
		t.Fatalf("unlock-otp: %d\n%s", r.status, r.body)
	}
	if !signedIn(mb.follow(mb.submitCode(mp, code, false))) {
		t.Fatal("after unlock-otp the code is still refused")
	}

	// End sessions: both of Bob's browsers are signed out, the trust is gone.
	e.clock.Advance(time.Minute)
	r := ab.adminAction("end-sessions", "bob", nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "sessions ended") {
		t.Fatalf("end-sessions: %d\n%s", r.status, r.body)
	}
	for i, b := range []*browser{trusted, mb} {
		if signedIn(b.follow(b.get("/user/"))) {
			t.Errorf("browser %d is still signed in", i)
		}
	}
	if p := trusted.login(bob.ID, bob.Password); signedIn(p) {
		t.Error("the revoked trusted browser skipped the factor")
	}

	e.clock.Advance(time.Minute)
	if r := ab.adminAction("reset-code", "bob", url.Values{"phone_verified": {"yes"}}); issuedCodeRe.FindString(r.body) == "" {
		t.Fatalf("reset-code: %d\n%s", r.status, r.body)
	}
	e.clock.Advance(time.Minute)
	if r := ab.adminAction("clear-factors", "bob", nil); r.status != http.StatusOK {
		t.Fatalf("clear-factors: %d\n%s", r.status, r.body)
	}

	// Each action is in the log with actor, subject and time, in order.
	events, err := e.db.ListAudit(context.Background(), store.AuditFilter{Actor: testldap.Admin.ID, Subject: bob.ID})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var last time.Time
	for i := len(events) - 1; i >= 0; i-- {
		if ev := events[i]; ev.Type != "admin_user_viewed" {
			got = append(got, ev.Type)
			// A minute passes on the test clock before each action.
			if !ev.Time.After(last) || ev.Time.After(e.clock.Now()) {
				t.Errorf("%s at %v (previous action at %v)", ev.Type, ev.Time, last)
			}
			last = ev.Time
		}
	}
	want := []string{"admin_password_unlocked", "admin_otp_unlocked", "admin_sessions_ended", "helpdesk_reset_code_issued", "admin_factors_cleared"}
	if !slices.Equal(got, want) {
		t.Fatalf("audited actions %q, want %q", got, want)
	}
	ended := e.auditOf("admin_sessions_ended", bob.ID)[0]
	if ended.Detail["trusted_browsers"] != "1" || ended.ClientIP == "" {
		t.Errorf("end-sessions detail: %+v", ended)
	}
	// The viewer shows them with the actor.
	v := ab.get("/admin/audit?" + url.Values{"actor": {testldap.Admin.ID}, "user": {"bob"}}.Encode())
	for _, typ := range want {
		if !strings.Contains(v.body, typ) {
			t.Errorf("audit viewer lacks %s", typ)
		}
	}
}

func TestConsoleNeedsAFreshFactorNotATrustedBrowser(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "helpdesk1.home@example.net"
	u := testldap.Helpdesk
	e.browser().enroll(u, addr)
	b := e.browser()
	p := b.mfaLogin(u)
	b.follow(b.submitCode(p, e.codeFrom(addr, otpSubject), true))
	b.logout()
	if !signedIn(b.login(u.ID, u.Password)) {
		t.Fatal("the trusted browser did not skip the factor for the account page")
	}

	// The trusted browser is not enough for the console: password and code.
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	p = b.follow(b.get("/admin/"))
	if !strings.Contains(p.body, `name="password"`) || !strings.Contains(p.body, consoleTitle) {
		t.Fatalf("the console did not step up to the password:\n%s", p.body)
	}
	p = b.follow(b.submitLogin(p, u.ID, u.Password))
	if !strings.Contains(p.body, "Multi-Factor Authentication : Email") {
		t.Fatalf("the trusted browser skipped the console's factor:\n%s", p.body)
	}
	p = b.follow(b.submitCode(p, e.codeFrom(addr, otpSubject), false))
	if !strings.Contains(p.body, consoleTitle) || strings.Contains(p.body, `name="password"`) {
		t.Fatalf("not in the console after the step-up:\n%s", p.body)
	}

	// Within the window the console stays open; after it, it asks again,
	// and a POST does nothing but send the browser to the login.
	e.clock.Advance(e.cfg.Admin.ReauthWindow - time.Minute)
	token := b.get("/admin/").hidden(t, "csrf_token")
	if p := b.get("/admin/user?id=alice"); p.status != http.StatusOK {
		t.Fatalf("inside the re-auth window: %d", p.status)
	}
	e.clock.Advance(2 * time.Minute)
	p = b.post("/admin/action", url.Values{"csrf_token": {token}, "action": {"unlock-otp"}, "id": {"alice"}})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/login?tx=") {
		t.Fatalf("stale factor POST: %d %q", p.status, p.location)
	}
	if ev := e.auditOf("admin_otp_unlocked", "alice"); len(ev) != 0 {
		t.Fatal("a POST with a stale factor acted")
	}
	p = b.follow(p)
	if !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("after the window: %d\n%s", p.status, p.body)
	}
	// After the step-up the browser is back where the POST came from.
	p = b.follow(b.submitLogin(p, u.ID, u.Password))
	p = b.follow(b.submitCode(p, e.codeFrom(addr, otpSubject), false))
	if !strings.Contains(p.body, "User status") || !strings.Contains(p.body, testldap.Alice.DisplayName) {
		t.Fatalf("the step-up did not return to the user's page:\n%s", p.body)
	}
}

func TestAccountDisabledInDirectoryEndsItsSessions(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "bob.home@example.net"
	bob := testldap.Bob
	e.browser().enroll(bob, addr)
	var browsers []*browser
	for i := 0; i < 2; i++ {
		if i > 0 {
			e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
		}
		b := e.browser()
		p := b.mfaLogin(bob)
		if !signedIn(b.follow(b.submitCode(p, e.codeFrom(addr, otpSubject), false))) {
			t.Fatal("login failed")
		}
		browsers = append(browsers, b)
	}
	e.ldap.Modify(t, "dn: "+bob.DN+"\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n")

	// The answer read within the interval still stands ...
	if !signedIn(browsers[1].follow(browsers[1].get("/user/"))) {
		t.Fatal("the session ended before the re-check was due")
	}
	// ... and the next request after it ends the session, every one of them.
	e.clock.Advance(e.cfg.Admin.AccountCheckInterval)
	p := browsers[0].follow(browsers[0].get("/user/"))
	if signedIn(p) || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("the disabled account's session continues:\n%s", p.body)
	}
	if signedIn(browsers[1].follow(browsers[1].get("/user/"))) {
		t.Fatal("the disabled account's other session continues")
	}
	ev := e.auditOf("session_ended_account_status", bob.ID)
	// Three sessions: the enrolling browser's and the two logins.
	if len(ev) != 1 || ev[0].Detail["reason"] != "disabled" || ev[0].Detail["sessions"] != "3" {
		t.Fatalf("audit: %+v", ev)
	}
	// And the account cannot sign in again.
	nb := e.browser()
	if p := nb.submitLogin(nb.openLogin(), bob.ID, bob.Password); p.status != http.StatusUnauthorized {
		t.Fatalf("a disabled account logged in: %d", p.status)
	}
}

func TestDirectoryOutageDoesNotEndSessionsButClosesConsole(t *testing.T) {
	e := newEnv(t, requireMFA)
	b := e.browser()
	b.openConsole(testldap.Admin, "admin1.home@example.net")
	e.ldap.Stop()
	e.clock.Advance(e.cfg.Admin.AccountCheckInterval)
	if !signedIn(b.follow(b.get("/user/"))) {
		t.Fatal("a directory outage ended the session")
	}
	if p := b.get("/admin/"); p.status != http.StatusServiceUnavailable {
		t.Fatalf("console during a directory outage: %d", p.status)
	}
	e.ldap.Restart(t)
	if p := b.get("/admin/"); p.status != http.StatusOK {
		t.Fatalf("console after the directory recovered: %d\n%s", p.status, p.body)
	}
}

func TestGroupChangesFollowTheDirectory(t *testing.T) {
	e := newEnv(t, requireMFA)
	ab := e.browser()
	ab.openConsole(testldap.Admin, "admin1.home@example.net")
	// Removed from the admin group (bob takes the place): the console closes
	// at the next re-check, without a new login.
	e.ldap.Modify(t, "dn: cn=idp-admins,"+testldap.GroupsDN+"\nchangetype: modify\nreplace: member\nmember: "+testldap.Bob.DN+"\n")
	if p := ab.get("/admin/"); p.status != http.StatusOK {
		t.Fatalf("console before the re-check: %d", p.status)
	}
	e.clock.Advance(e.cfg.Admin.AccountCheckInterval)
	if p := ab.get("/admin/"); p.status != http.StatusForbidden {
		t.Fatalf("console after removal from the group: %d", p.status)
	}

	// Relying parties see groups as of the login: the next login has them.
	e.cfg.MFA.Enrollment = config.EnrollmentOptional
	e.app.Handle("GET /test/begin", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := e.app.BeginLogin(r.Context(), idp.AuthRequest{ClientID: "test", ReturnTo: "/test/done"})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "test_tx", Value: id, Path: "/test/"})
		http.Redirect(w, r, idp.LoginURL(id), http.StatusSeeOther)
	}))
	e.app.Handle("GET /test/done", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("test_tx")
		res, err := e.app.FinishLogin(r.Context(), c.Value)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "groups=%s", strings.Join(res.User.Groups, ","))
	}))
	claims := func(b *browser) string {
		p := b.follow(b.get("/test/begin"))
		if strings.Contains(p.body, `name="password"`) {
			p = b.follow(b.submitLogin(p, testldap.Taro.ID, testldap.Taro.Password))
		}
		return p.body
	}
	tb := e.browser()
	if got := claims(tb); got != "groups=students" {
		t.Fatalf("first login: %q", got)
	}
	e.ldap.Modify(t, "dn: cn=idp-helpdesk,"+testldap.GroupsDN+"\nchangetype: modify\nadd: member\nmember: "+testldap.Taro.DN+"\n")
	e.clock.Advance(e.cfg.Admin.AccountCheckInterval)
	if got := claims(tb); got != "groups=students" {
		t.Errorf("the session's claims changed without a login: %q", got)
	}
	tb.logout()
	if got := claims(tb); got != "groups=idp-helpdesk,students" {
		t.Errorf("next login: %q", got)
	}
}

func TestAuditViewerFiltersPagesAndExports(t *testing.T) {
	e := newEnv(t, requireMFA, func(c *config.Config, _ *ldapstore.Config) { c.Admin.AuditPageSize = 10 })
	hb := e.browser()
	hb.openConsole(testldap.Helpdesk, "helpdesk1.home@example.net")
	start := e.clock.Now()
	e.clock.Advance(10 * time.Minute) // still inside the re-auth window

	// 23 failed logins under distinct IDs, two of them spreadsheet formulas.
	hostile := []string{`=HYPERLINK("http://evil.example","x")`, "@SUM(1+1)"}
	ids := append([]string{}, hostile...)
	for i := len(ids); i < 23; i++ {
		ids = append(ids, fmt.Sprintf("nobody%02d", i))
	}
	for _, id := range ids {
		b := e.browser()
		b.submitLogin(b.openLogin(), id, "wrong")
	}

	rowsOf := func(p page) int { return strings.Count(p.body, `class="evtype" href="/admin/audit?type=login_failed"`) }
	p := hb.get("/admin/audit?type=login_failed")
	if p.status != http.StatusOK || rowsOf(p) != 10 {
		t.Fatalf("first page: %d, %d rows\n%s", p.status, rowsOf(p), p.body)
	}
	var seen int
	for pages := 1; ; pages++ {
		seen += rowsOf(p)
		m := regexp.MustCompile(`<a href="(/admin/audit\?[^"]*before=[^"]*)">`).FindStringSubmatch(p.body)
		if m == nil {
			if pages != 3 {
				t.Errorf("%d pages, want 3", pages)
			}
			break
		}
		p = hb.get(strings.ReplaceAll(m[1], "&amp;", "&"))
		if !strings.Contains(p.body, "Newest events") {
			t.Error("an older page has no way back to the newest")
		}
	}
	if seen != len(ids) {
		t.Errorf("paging showed %d events, want %d", seen, len(ids))
	}

	filters := []struct {
		query string
		want  int // rows of login_failed
	}{
		{"type=login_failed&user=nobody05", 1},
		{"user=nobody05", 1},
		{"type=login_failed&actor=nobody07", 1},
		{"type=login_failed&actor=" + testldap.Helpdesk.ID, 0},
		{"type=login_failed&until=" + url.QueryEscape(start.Local().Format("2006-01-02T15:04")), 0},
		{"type=login_failed&since=" + url.QueryEscape(start.Add(5*time.Minute).Local().Format("2006-01-02T15:04")), 10},
	}
	for _, f := range filters {
		if p := hb.get("/admin/audit?" + f.query); p.status != http.StatusOK || rowsOf(p) != f.want {
			t.Errorf("%s: status %d, %d rows, want %d", f.query, p.status, rowsOf(p), f.want)
		}
	}
	if p := hb.get("/admin/audit?since=yesterday"); p.status != http.StatusBadRequest || !strings.Contains(p.body, "filter is not valid") {
		t.Errorf("bad time filter: %d", p.status)
	}

	// CSV export: every matching event, and formulas neutralised.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/admin/audit.csv?type=login_failed", nil)
	resp, err := hb.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("export headers: %q %q", ct, resp.Header.Get("Content-Disposition"))
	}
	records, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != len(ids)+1 || records[0][3] != "actor" || records[0][4] != "subject" {
		t.Fatalf("%d CSV records, header %q", len(records), records[0])
	}
	subjects := map[string]bool{}
	for _, rec := range records[1:] {
		subjects[rec[4]] = true
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("cell %q starts a formula", cell)
			}
		}
	}
	for _, h := range hostile {
		if !subjects["'"+h] {
			t.Errorf("hostile subject %q not exported with a quote", h)
		}
	}
	if ev := e.auditOf("admin_audit_exported", ""); len(ev) != 1 || ev[0].Actor != testldap.Helpdesk.ID || ev[0].Detail["rows"] != "23" {
		t.Errorf("export audit: %+v", ev)
	}
}

func TestExportAuditReadsPastOneStorePage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	total := store.MaxAuditLimit + 7
	for i := 0; i < total; i++ {
		if err := e.db.AppendAudit(ctx, store.AuditEvent{Time: e.clock.Now(), Type: "bulk_test", Actor: "x", Subject: fmt.Sprintf("u%04d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var buf strings.Builder
	n, err := e.app.ExportAudit(ctx, "tester", &buf, idp.AuditQuery{Type: "bulk_test"})
	if err != nil || n != total {
		t.Fatalf("exported %d (err %v), want %d", n, err, total)
	}
	records, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if err != nil || len(records) != total+1 {
		t.Fatalf("%d records (err %v)", len(records), err)
	}
	// Newest first, each event once.
	if records[1][4] != fmt.Sprintf("u%04d", total-1) || records[total][4] != "u0000" {
		t.Errorf("order: first %q, last %q", records[1][4], records[total][4])
	}
	seen := map[string]bool{}
	for _, r := range records[1:] {
		if seen[r[0]] {
			t.Fatalf("event %s exported twice", r[0])
		}
		seen[r[0]] = true
	}
}

func TestMenuLinksTheConsoleForStaffOnly(t *testing.T) {
	e := newEnv(t)
	if p := e.browser().login(testldap.Helpdesk.ID, testldap.Helpdesk.Password); !strings.Contains(p.body, `href="/admin/"`) {
		t.Errorf("helpdesk menu lacks the console link:\n%s", p.body)
	}
	if p := e.browser().login(testldap.Alice.ID, testldap.Alice.Password); strings.Contains(p.body, `href="/admin/"`) {
		t.Error("a non-staff menu links the console")
	}
}
