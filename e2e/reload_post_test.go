package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
)

const (
	codeIncorrect  = "The One-Time Password is incorrect."
	resetIncorrect = "The confirmation code is incorrect."
)

// reload reloads the page on screen and records the document it got.
func (tb *tab) reload() {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Reload())
	if err != nil || resp == nil {
		tb.t.Fatalf("browser: reload of %s: %v", tb.location(), err)
	}
	tb.docURL, tb.docStatus = resp.URL, resp.Status
}

// wrongCodeThenReload submits a wrong code with the button, expects the
// error on the page under the GET address wantPath (not the form's POST
// address), then reloads: a reload must GET the page (200, no error from a
// resubmitted code), not post the form again.
func (tb *tab) wrongCodeThenReload(field, button, wantPath, title, wantErr string) {
	tb.t.Helper()
	tb.fill(field, "000000")
	tb.click(button)
	tb.mustSee(wantErr)
	if tb.docStatus == http.StatusOK {
		tb.t.Fatalf("a wrong code answered 200")
	}
	tb.page("wrong code", int(tb.docStatus))
	if p := tb.path(); p != wantPath {
		tb.t.Fatalf("after a wrong code the address bar shows %s, want %s", p, wantPath)
	}
	tb.reload()
	if tb.docStatus != http.StatusOK {
		tb.t.Fatalf("reload answered %d (resubmitted the form?), want 200", tb.docStatus)
	}
	tb.mustSee(title)
	if body := tb.text(); strings.Contains(body, wantErr) {
		tb.t.Fatalf("the reload shows the code error again: the form was resubmitted")
	}
	tb.page("after reload", http.StatusOK)
}

// A wrong code on the MFA page, the settings confirm or the reset leaves the GET
// address in the address bar, so a reload shows the page and posts nothing
// (issue #14 item 6).
func TestWrongCodeReloadDoesNotResubmit(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	const addr = "reloadpost.e2e@example.net"
	tb := newTab(t, e)

	// Settings: first-login setup, code sent, a wrong code confirmed.
	tb.open("/user/")
	tb.submitLogin(testldap.Bob)
	tb.mustSee(settingsTitle)
	tb.fill("otp-address", addr)
	tb.click(sendButton)
	tb.mustSee(sentTo, addr)
	tb.wrongCodeThenReload("otp-code", confirmButton, "/user/otp", settingsTitle, codeIncorrect)
	tb.mustSee(sentTo, addr)
	tb.fill("otp-code", e.CodeFrom(addr, testenv.OTPSubject))
	tb.click(confirmButton)
	tb.mustSee(settingsDone)
	tb.click("a.button")
	tb.mustSee(signedIn)
	tb.logout(false)

	// MFA: a wrong login code.
	e.Clock.Advance(e.Config.MFA.Email.ResendCooldown)
	tb.mfaEmailLogin(testldap.Bob)
	mails := e.MailCount(addr, testenv.OTPSubject)
	tb.wrongCodeThenReload("mfa-code", mfaButton, "/mfa", mfaEmailTitle, codeIncorrect)
	if n := e.MailCount(addr, testenv.OTPSubject); n != mails {
		t.Fatalf("%d code mails after the reload, want %d", n, mails)
	}
	tb.fill("mfa-code", e.CodeFrom(addr, testenv.OTPSubject))
	tb.click(mfaButton)
	tb.mustSee(signedIn, testldap.Bob.ID)
	tb.logout(false)

	// Reset: a wrong confirmation code.
	e.Clock.Advance(e.Config.MFA.Email.ResendCooldown)
	tb.mfaEmailLogin(testldap.Bob)
	tb.clickText(resetLinkText)
	tb.fill("reset-id", testldap.Bob.ID)
	tb.fill("reset-password", testldap.Bob.Password)
	tb.click(resetLoginButton)
	tb.click(resetInitButton)
	tb.mustSee("Initializing One-Time Password Settings")
	tb.wrongCodeThenReload("reset-code", resetConfirmButton, "/reset/code", "Initializing One-Time Password Settings", resetIncorrect)
}
