package idp_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/mfa"
)

const resetDoneSubject = "ワンタイムパスワード設定初期化のお知らせ / Notification of one time password settings initialization"

// The reset works whatever the user had registered: the mailed code where
// there is an address, the helpdesk's code otherwise; the notice goes only
// where there is an address.
func TestResetForEveryFactorCombination(t *testing.T) {
	const addr = "combo.home@example.net"
	cases := []struct {
		name         string
		email, app   bool
		wantMailCode bool
	}{
		{"email only", true, false, true},
		{"app only", false, true, false},
		{"email and app", true, true, true},
		{"none", false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, requireMFA)
			u := testldap.Alice
			switch {
			case tc.app && tc.email:
				// Signed in with the app, add the address.
				b := e.browser()
				b.enrollApp(u)
				e.clock.Advance(time.Minute)
				b.registerAddress(b.follow(b.get("/user/otp")), addr)
			case tc.app:
				e.browser().enrollApp(u)
			case tc.email:
				e.browser().enroll(u, addr)
			}
			e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
			b := e.browser()
			p := b.startReset(u)
			if p.status != http.StatusOK || !strings.Contains(p.body, "Initializing One-Time Password Settings") {
				t.Fatalf("Initialize: %d\n%s", p.status, p.body)
			}
			placeholder := "id********@mail2.adm.example.ac.jp"
			if shown := strings.Contains(p.body, placeholder); shown == tc.email {
				t.Errorf("placeholder address shown %v with an address registered %v", shown, tc.email)
			}
			if tc.email && !strings.Contains(p.body, mfa.MaskAddress(addr)) {
				t.Errorf("code page does not show the masked address")
			}
			var code string
			if tc.wantMailCode {
				code = e.codeFrom(addr, resetSubject)
			} else {
				if n := e.mailCount(addr, resetSubject); n != 0 {
					t.Errorf("%d reset mails without an address", n)
				}
				var err error
				if code, err = e.app.IssueResetCode(context.Background(), testldap.Helpdesk.ID, u.ID); err != nil {
					t.Fatal(err)
				}
			}
			r := b.post("/reset/confirm", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "code": {code}})
			p = b.follow(r)
			if !strings.Contains(p.body, "register a new address") {
				t.Fatalf("reset did not complete: %d\n%s", r.status, p.body)
			}
			if _, err := e.db.GetRecord(context.Background(), "mfa_factors", u.ID, e.clock.Now()); err == nil {
				t.Error("factors survive the reset")
			}
			if got, want := e.mailCount(addr, resetDoneSubject), map[bool]int{true: 1, false: 0}[tc.email]; got != want {
				t.Errorf("%d reset notices, want %d", got, want)
			}
			p = b.registerAddress(p, "combo.new@example.org")
			if !strings.Contains(p.body, "settings are complete") {
				t.Fatalf("setup after the reset did not complete:\n%s", p.body)
			}
		})
	}
}

// Reloads and new logins during the MFA step mail no new code while the
// last one is valid; that code works in any of those logins; a resend
// leaves the earlier code valid.
func TestReloadSendsNoNewCode(t *testing.T) {
	e := newEnv(t, requireMFA)
	const addr = "reload@example.net"
	e.browser().enroll(testldap.Bob, addr)
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	base := e.mailCount(addr, otpSubject)

	b := e.browser()
	p := b.mfaLogin(testldap.Bob)
	first := e.codeFrom(addr, otpSubject)
	for i := 0; i < 3; i++ {
		// A reload of the account page starts a new login; so does
		// another browser.
		if r := b.follow(b.get("/user/")); !strings.Contains(r.body, "Multi-Factor Authentication : Email") {
			t.Fatalf("reload %d: %d\n%s", i, r.status, r.body)
		}
		e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	}
	other := e.browser()
	op := other.mfaLogin(testldap.Bob)
	if !strings.Contains(op.body, "provided in the email") {
		t.Errorf("the MFA page of a new login does not say a code was sent:\n%s", op.body)
	}
	if n := e.mailCount(addr, otpSubject); n != base+1 {
		t.Fatalf("%d code mails after one login, three reloads and a second login, want 1", n-base)
	}
	// Resend (past the cooldown) mails once more; the first code still works.
	r := b.post("/mfa/send", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")}})
	if r.status != http.StatusSeeOther || e.mailCount(addr, otpSubject) != base+2 {
		t.Fatalf("resend: %d, mails %d", r.status, e.mailCount(addr, otpSubject)-base)
	}
	if !signedIn(other.follow(other.submitCode(op, first, false))) {
		t.Fatal("the first code, still within its lifetime, was refused in another login")
	}
}

// A setup code proves the address it went to: after sending to another
// address, the first address's code no longer confirms anything.
func TestSetupCodeOfAnEarlierAddressIsVoided(t *testing.T) {
	e := newEnv(t, requireMFA)
	b := e.browser()
	p := b.login(testldap.Alice.ID, testldap.Alice.Password)
	send := func(addr string) {
		r := b.post("/user/otp/email/send", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")}, "address": {addr}})
		if r.status != http.StatusSeeOther {
			t.Fatalf("send to %s: %d\n%s", addr, r.status, r.body)
		}
	}
	send("first@example.net")
	first := e.codeFrom("first@example.net", otpSubject)
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	send("second@example.net")
	r := b.post("/user/otp/email/confirm", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")}, "code": {first}})
	if strings.Contains(b.follow(r).body, "settings are complete") {
		t.Fatal("the first address's code registered the second address")
	}
	r = b.post("/user/otp/email/confirm", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")}, "code": {e.codeFrom("second@example.net", otpSubject)}})
	if !strings.Contains(b.follow(r).body, "settings are complete") {
		t.Fatalf("the second address's code was refused:\n%s", r.body)
	}
}

// A reset voids the login codes mailed to the old address: the user lost
// that mailbox, and the next login mails the new address at once.
func TestResetVoidsLoginCodesOfTheOldAddress(t *testing.T) {
	e := newEnv(t, requireMFA)
	const oldAddr, newAddr = "old.box@example.net", "new.box@example.net"
	e.browser().enroll(testldap.Bob, oldAddr)
	e.clock.Advance(e.cfg.MFA.Email.ResendCooldown)
	b := e.browser()
	p := b.mfaLogin(testldap.Bob)
	old := e.codeFrom(oldAddr, otpSubject)

	rb := e.browser()
	rp := rb.resetWithMail(testldap.Bob, oldAddr)
	if !strings.Contains(rb.registerAddress(rp, newAddr).body, "settings are complete") {
		t.Fatal("setup after the reset failed")
	}
	if r := b.submitCode(p, old, false); signedIn(b.follow(r)) {
		t.Fatal("a login code mailed to the old address signed in after the reset")
	}
	before := e.mailCount(newAddr, otpSubject)
	e.browser().mfaLogin(testldap.Bob)
	if e.mailCount(newAddr, otpSubject) != before+1 {
		t.Fatal("the first login after the reset mailed no code to the new address")
	}
}

// The reset's first page says it is the one-time-password reset.
func TestResetLoginPageSaysWhereTheUserIs(t *testing.T) {
	e := newEnv(t, requireMFA)
	p := e.browser().get("/reset")
	for _, want := range []string{"Initialize One-Time Password Settings", "ワンタイムパスワード設定の初期化", "initial setup or setup again"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("reset login page lacks %q", want)
		}
	}
}
