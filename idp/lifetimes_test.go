package idp_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/internal/testldap"
)

// Each lifetime from config is enforced: these tests move the injected clock
// just past it.

func TestResetGrantExpires(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "grant.expiry@example.net"
	e.browser().enroll(testldap.Alice, addr)
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	b := e.browser()
	b.resetWithMail(testldap.Alice, addr)
	e.clock.Advance(e.cfg.MFA.Email.ResetGrantLifetime + time.Second)
	if p := b.follow(b.get("/user/otp")); !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("an expired reset grant still opens the settings:\n%s", p.body)
	}
}

func TestTrustedBrowserExpires(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "trust.expiry@example.net"
	e.browser().enroll(testldap.Alice, addr)
	b := e.browser()
	p := b.mfaLogin(testldap.Alice)
	b.follow(b.submitCode(p, e.codeFrom(addr, otpSubject), true))
	b.logout()
	e.clock.Advance(e.cfg.MFA.TrustedBrowserLifetime - time.Hour)
	if p := b.login(testldap.Alice.ID, testldap.Alice.Password); !signedIn(p) {
		t.Fatal("the browser stopped being trusted before its lifetime")
	}
	b.logout()
	e.clock.Advance(2 * time.Hour)
	if p := b.login(testldap.Alice.ID, testldap.Alice.Password); signedIn(p) {
		t.Fatal("the browser is still trusted after its lifetime")
	}
}

func TestLoginTransactionExpires(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	form := b.openLogin()
	e.clock.Advance(e.cfg.Security.LoginTxLifetime + time.Second)
	p := b.submitLogin(form, testldap.Alice.ID, testldap.Alice.Password)
	if signedIn(b.follow(p)) || !strings.Contains(p.body, "Your login attempt has expired") {
		t.Fatalf("an expired login transaction was accepted: %d\n%s", p.status, p.body)
	}
	// The page offers a fresh form with the ID kept; it works.
	if !strings.Contains(p.body, `value="`+testldap.Alice.ID+`"`) {
		t.Error("the typed ID was lost")
	}
	if r := b.follow(b.submitLogin(p, testldap.Alice.ID, testldap.Alice.Password)); !signedIn(r) {
		t.Fatalf("the fresh form did not work:\n%s", r.body)
	}
}

func TestResetFlowExpires(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "reset.expiry@example.net"
	e.browser().enroll(testldap.Alice, addr)
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	b := e.browser()
	p := b.startReset(testldap.Alice)
	code := e.codeFrom(addr, resetSubject)
	e.clock.Advance(e.cfg.MFA.Email.ResetCodeLifetime + time.Second)
	r := b.follow(b.post("/reset/confirm", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "code": {code}}))
	if strings.Contains(r.body, "register a new address") || !strings.Contains(r.body, "has expired") {
		t.Fatalf("a reset past its lifetime went through:\n%s", r.body)
	}
}
