package e2e

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/mfa"
)

var digitsRe = regexp.MustCompile(`^\d{6,10}$`)

// The manual's reset for a user with no address registered: the page shows
// the placeholder address and the helpdesk's number; the helpdesk, in its
// console, issues a confirmation code after the phone check, and the user
// types it into the page still open. Every console screen is checked too.
func TestHelpdeskResetCode(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	u := testldap.Alice

	user := newTab(t, e)
	user.open("/reset")
	user.fill("reset-id", u.ID)
	user.fill("reset-password", u.Password)
	user.click(resetLoginButton)
	user.click(resetInitButton)
	placeholder := mfa.MaskAddress(e.Config.MFA.Email.PlaceholderAddress)
	user.mustSee("メール認証用アドレス / Address for email-authentication\n"+placeholder,
		"ICT Support Center", "TEL: "+e.Config.Branding.HelpdeskPhone)
	user.page("no address registered", http.StatusOK)

	// The helpdesk signs in to the console: password, then its own factor.
	desk := newTab(t, e)
	desk.open("/admin/")
	desk.submitLogin(testldap.Helpdesk)
	desk.mustSee(settingsTitle)
	desk.registerAddress("helpdesk1.home@example.net", false)
	desk.click("a.button")
	desk.mustSee("Helpdesk and admin console")
	desk.page("console", http.StatusOK)
	desk.fill("admin-lookup-id", u.ID)
	desk.click(`form[action="/admin/user"] button[type=submit]`)
	desk.mustSee(u.DisplayName, "No second factor is registered")
	desk.page("user lookup", http.StatusOK)
	desk.click(`a[href*="action=reset-code"]`)
	desk.page("issue code", http.StatusOK)
	desk.check("admin-phone-verified")
	desk.click(`form[action="/admin/action"] button[type=submit]`)
	code := eval[string](desk, `document.querySelector('output.issued-code').textContent.trim()`)
	if !digitsRe.MatchString(code) {
		t.Fatalf("the console shows %q as the code", code)
	}
	desk.page("code issued", http.StatusOK)

	// The user types the code read out on the phone.
	user.fill("reset-code", code)
	user.click(resetConfirmButton)
	user.mustSee("The initialization is complete.", settingsTitle)
	user.registerAddress("alice.home@example.org", false)
	user.logout(false)

	desk.open("/admin/audit?user=" + u.ID)
	desk.mustSee("helpdesk_reset_code_issued", "mfa_reset")
	if strings.Contains(desk.text(), code) {
		t.Error("the audit log shows the issued code")
	}
	desk.page("audit log", http.StatusOK)
}
