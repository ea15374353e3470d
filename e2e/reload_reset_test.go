package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
)

// Reloading during the MFA step shows the page again and mails nothing:
// one code mail however often the user reloads, and that code still works.
func TestReloadDuringMFAMailsOnce(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	const addr = "reload.e2e@example.net"
	tb := newTab(t, e)
	tb.enroll(testldap.Bob, addr)
	tb.logout(false)
	e.Clock.Advance(e.Config.MFA.Email.ResendCooldown)
	before := e.MailCount(addr, testenv.OTPSubject)

	tb.mfaEmailLogin(testldap.Bob)
	for i := 0; i < 3; i++ {
		tb.open("/user/")
		tb.mustSee(mfaEmailTitle)
		e.Clock.Advance(e.Config.MFA.Email.ResendCooldown)
	}
	tb.page("mfa after reloads", http.StatusOK)
	if n := e.MailCount(addr, testenv.OTPSubject) - before; n != 1 {
		t.Fatalf("%d code mails after a login and three reloads, want 1", n)
	}
	tb.fill("mfa-code", e.CodeFrom(addr, testenv.OTPSubject))
	tb.click(mfaButton)
	tb.mustSee(signedIn, testldap.Bob.ID)
}

// A user with only the authenticator app (lost phone) resets from the MFA
// page: no address, so the page shows the placeholder and the helpdesk,
// and the helpdesk's code completes the reset.
func TestResetForAppOnlyUser(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	u := testldap.Bob
	tb := newTab(t, e)
	tb.open("/user/")
	tb.submitLogin(u)
	tb.click(`a.tab[href*="tab=app"]`)
	tb.mustSee("QR")
	secret := eval[string](tb, `document.querySelector('code.secret').textContent.trim()`)
	code, err := totp.GenerateCode(secret, e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	tb.fill("app-code", code)
	tb.click(appConfirmButton)
	tb.mustSee(settingsDone)
	tb.click("a.button")
	tb.mustSee(signedIn)
	tb.logout(false)

	e.Clock.Advance(30 * time.Second)
	tb.open("/user/")
	tb.submitLogin(u)
	tb.mustSee(mfaAppTitle)
	tb.clickText(resetLinkText)
	tb.fill("reset-id", u.ID)
	tb.fill("reset-password", u.Password)
	tb.click(resetLoginButton)
	tb.click(resetInitButton)
	tb.mustSee("Initializing One-Time Password Settings", u.ID, "id********@mail2.adm.example.ac.jp", e.Config.Branding.HelpdeskPhone)
	tb.page("app-only reset code", http.StatusOK)
	hc, err := e.App.IssueResetCode(context.Background(), testldap.Helpdesk.ID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	tb.fill("reset-code", hc)
	tb.click(resetConfirmButton)
	tb.mustSee("The initialization is complete.", settingsTitle)
	tb.page("app-only reset done", http.StatusOK)
}
