package idp_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/store"
)

const ceilingSubject = "ワンタイムパスワードの誤入力が続いています / Repeated wrong one-time passwords for your account"

// Issue #15 item 3: someone who knows the password spends their own
// session's budget; the owner's correct code in another session still works.
func TestWrongCodesElsewhereDoNotLockTheOwner(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "owner@example.net"
	e.browser().enroll(testldap.Alice, addr)

	attacker := e.browser()
	p := attacker.mfaLogin(testldap.Alice)
	code := e.codeFrom(addr, otpSubject)
	for i := 0; i < e.cfg.MFA.Email.FailureBudget.Limit; i++ {
		attacker.submitCode(p, wrong(code), false)
	}
	if r := attacker.submitCode(p, code, false); signedIn(attacker.follow(r)) || !strings.Contains(r.body, "Too many failed attempts") {
		t.Fatalf("the guessing session was not locked after its budget: %d\n%s", r.status, r.body)
	}

	owner := e.browser()
	p = owner.mfaLogin(testldap.Alice)
	if r := owner.submitCode(p, e.codeFrom(addr, otpSubject), false); !signedIn(owner.follow(r)) {
		t.Fatalf("the owner's correct code failed after %d wrong ones in another session: %d\n%s",
			e.cfg.MFA.Email.FailureBudget.Limit, r.status, r.body)
	}
}

// The account-wide ceiling stops a guesser who spreads tries over many
// sessions, mails the owner once and audits it; a browser of the owner's
// (a device cookie that passed a second factor before) still signs in.
func TestOTPCeilingStopsDistributedGuesserButNotTheOwnersBrowser(t *testing.T) {
	e := newEnv(t, requireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.MFA.Email.FailureBudget = config.Budget{Limit: 2, Window: time.Hour}
		c.MFA.Email.AccountFailureLimit = 6
	})
	const addr = "ceiling@example.net"
	owner := e.browser()
	owner.enroll(testldap.Alice, addr)
	owner.logout()
	p := owner.mfaLogin(testldap.Alice)
	if r := owner.submitCode(p, e.codeFrom(addr, otpSubject), false); !signedIn(owner.follow(r)) {
		t.Fatalf("owner's first login: %d\n%s", r.status, r.body)
	}
	owner.logout()

	code := ""
	for i := 0; i < 3; i++ {
		g := e.browser()
		p := g.mfaLogin(testldap.Alice)
		if code == "" {
			code = e.codeFrom(addr, otpSubject)
		}
		for j := 0; j < 2; j++ {
			g.submitCode(p, wrong(code), false)
		}
	}
	if n := e.mailCount(addr, ceilingSubject); n != 1 {
		t.Fatalf("%d ceiling mails to the owner, want 1", n)
	}
	events, _ := e.db.ListAudit(context.Background(), store.AuditFilter{Subject: testldap.Alice.ID, Type: "mfa_ceiling_reached"})
	if len(events) != 1 {
		t.Fatalf("%d mfa_ceiling_reached audit events, want 1", len(events))
	}

	// A new guessing session is refused even the right code.
	g := e.browser()
	p = g.login(testldap.Alice.ID, testldap.Alice.Password)
	if r := g.submitCode(p, code, false); signedIn(g.follow(r)) || !strings.Contains(r.body, "Too many failed attempts") {
		t.Fatalf("a new session passed after the ceiling: %d\n%s", r.status, r.body)
	}
	if n := e.mailCount(addr, ceilingSubject); n != 1 {
		t.Fatalf("%d ceiling mails after more tries, want still 1", n)
	}

	// The owner's browser is not locked by the failures made elsewhere.
	p = owner.mfaLogin(testldap.Alice)
	if r := owner.submitCode(p, e.codeFrom(addr, otpSubject), false); !signedIn(owner.follow(r)) {
		t.Fatalf("the owner's browser was locked out by the ceiling tripped elsewhere: %d\n%s", r.status, r.body)
	}
}

// A device cookie that only passed the password (all a guesser has) does
// not escape the ceiling: a new login with fresh cookies is still refused.
func TestFreshDeviceCookieDoesNotEscapeTheCeiling(t *testing.T) {
	e := newEnv(t, requireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.MFA.Email.FailureBudget = config.Budget{Limit: 2, Window: time.Hour}
		c.MFA.Email.AccountFailureLimit = 4
	})
	const addr = "fresh@example.net"
	e.browser().enroll(testldap.Alice, addr)
	g := e.browser()
	p := g.mfaLogin(testldap.Alice)
	code := e.codeFrom(addr, otpSubject)
	for i := 0; i < 2; i++ {
		g.submitCode(p, wrong(code), false)
	}
	// New sessions carrying the same device cookie, as a guesser would.
	withDevice := func() *browser {
		u, _ := url.Parse(e.srv.URL)
		b := e.browser()
		for _, c := range g.jar.Cookies(u) {
			if strings.HasPrefix(c.Name, "idp_dev_") {
				b.jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/"}})
				return b
			}
		}
		t.Fatal("the guesser's browser holds no device cookie")
		return nil
	}
	g2 := withDevice()
	p = g2.mfaLogin(testldap.Alice)
	for i := 0; i < 2; i++ {
		g2.submitCode(p, wrong(code), false)
	}
	g3 := withDevice()
	p = g3.login(testldap.Alice.ID, testldap.Alice.Password)
	if r := g3.submitCode(p, code, false); signedIn(g3.follow(r)) || !strings.Contains(r.body, "Too many failed attempts") {
		t.Fatalf("a password-only device cookie escaped the ceiling: %d\n%s", r.status, r.body)
	}
}

// A trusted browser of the owner's is not blocked by the ceiling either: in
// the settings it still gets and uses a setup code for a new address.
func TestOTPCeilingSparesTheOwnersTrustedBrowser(t *testing.T) {
	e := newEnv(t, requireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.MFA.Email.FailureBudget = config.Budget{Limit: 2, Window: time.Hour}
		c.MFA.Email.AccountFailureLimit = 4
	})
	const addr = "trusted.owner@example.net"
	e.browser().enroll(testldap.Alice, addr)
	owner := e.browser()
	p := owner.mfaLogin(testldap.Alice)
	if r := owner.submitCode(p, e.codeFrom(addr, otpSubject), true); !signedIn(owner.follow(r)) {
		t.Fatalf("owner's login with trust: %d\n%s", r.status, r.body)
	}
	// Only the trusted-browser cookie counts here: drop the device cookie.
	u, _ := url.Parse(e.srv.URL)
	for _, c := range owner.jar.Cookies(u) {
		if strings.HasPrefix(c.Name, "idp_dev_") {
			owner.jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Path: "/", MaxAge: -1}})
		}
	}
	for i := 0; i < 2; i++ {
		g := e.browser()
		p := g.mfaLogin(testldap.Alice)
		code := e.codeFrom(addr, otpSubject)
		for j := 0; j < 2; j++ {
			g.submitCode(p, wrong(code), false)
		}
	}
	if n := e.mailCount(addr, ceilingSubject); n != 1 {
		t.Fatalf("%d ceiling mails, want 1", n)
	}
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	p = owner.registerAddress(owner.follow(owner.get("/user/otp")), "trusted.new@example.net")
	if !strings.Contains(p.body, "settings are complete") {
		t.Fatalf("the owner's trusted browser could not confirm a setup code after the ceiling: %d\n%s", p.status, p.body)
	}
}
