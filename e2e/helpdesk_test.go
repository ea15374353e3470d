package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

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
	desk.mustSee("Reset code issued by the helpdesk", "MFA settings initialized", "Code issued by: "+testldap.Helpdesk.ID)
	if strings.Contains(desk.text(), code) {
		t.Error("the audit log shows the issued code")
	}
	desk.page("audit log", http.StatusOK)
}

// The console on a phone (375 px): a helpdesk worker takes a student's call
// on the phone and reads the user page and the audit log there. Every cell
// of the event tables must be on screen (the rows stack), and the events
// read as words in both languages, with the staff member who issued a
// reset code named on the completed reset.
func TestConsoleOnAPhone(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	u := testldap.Alice

	// The student forgets the password once, then resets with a code the
	// helpdesk issues (HTTP is enough to make the events).
	b := e.Browser()
	lp := b.Follow(b.Get("/user/"))
	b.Post("/login", url.Values{"csrf_token": {lp.Hidden(t, "csrf_token")}, "tx": {lp.Hidden(t, "tx")},
		"username": {u.ID}, "password": {"wrong"}})

	desk := newTab(t, e)
	desk.open("/admin/")
	desk.submitLogin(testldap.Helpdesk)
	desk.registerAddress("helpdesk1.home@example.net", false)
	desk.click("a.button")
	desk.mustSee("Helpdesk and admin console")

	rp := b.Get("/reset")
	rp = b.Follow(b.Post("/reset/login", url.Values{"csrf_token": {rp.Hidden(t, "csrf_token")},
		"username": {u.ID}, "password": {u.Password}}))
	rp = b.Follow(b.Post("/reset/init", url.Values{"csrf_token": {rp.Hidden(t, "csrf_token")}}))
	desk.open("/admin/action?action=reset-code&id=" + u.ID)
	desk.check("admin-phone-verified")
	desk.click(`form[action="/admin/action"] button[type=submit]`)
	code := eval[string](desk, `document.querySelector('output.issued-code').textContent.trim()`)
	if done := b.Post("/reset/confirm", url.Values{"csrf_token": {rp.Hidden(t, "csrf_token")}, "code": {code}}); done.Status != http.StatusSeeOther {
		t.Fatalf("the reset with the helpdesk's code: %d", done.Status)
	}

	desk.do(chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile))
	for _, screen := range []struct {
		name, path string
		words      []string
	}{
		{"user page", "/admin/user?id=" + u.ID, []string{"ログイン失敗", "Login failed", "パスワードの誤り", "Wrong password",
			"多要素認証設定の初期化を完了", "MFA settings initialized", "コード発行者", "Code issued by", testldap.Helpdesk.ID}},
		{"audit log", "/admin/audit?user=" + u.ID, []string{"初期化用確認コードを発行（ヘルプデスク）", "Reset code issued by the helpdesk",
			"経路", "Via", "ヘルプデスク", "Helpdesk", "コード発行者", "Code issued by"}},
	} {
		desk.open(screen.path)
		desk.mustSee(screen.words...)
		text := desk.text()
		for _, raw := range []string{"login_failed", "mfa_reset", "helpdesk_reset_code_issued", "issued_by=", "reason=", "wrong_password"} {
			if strings.Contains(text, raw) {
				t.Errorf("%s shows the identifier %q instead of words", screen.name, raw)
			}
		}
		// Every cell of every event row is on the 375 px screen, with room
		// for its words: none is cut off at the right or squeezed to nothing.
		off := eval[[]string](desk, `Array.from(document.querySelectorAll('table.events td')).filter(td => {
			const r = td.getBoundingClientRect();
			return r.width < 100 || r.left < 0 || r.right > window.innerWidth;
		}).map(td => td.textContent.trim().slice(0, 40))`)
		cells := eval[int](desk, `document.querySelectorAll('table.events td').length`)
		if cells == 0 || len(off) > 0 {
			t.Errorf("%s at %d px: %d cells, these not fully on screen: %q", screen.name, phoneWidth, cells, off)
		}
		desk.shotPhone(screen.name)
	}
	desk.do(chromedp.EmulateViewport(desktopWidth, desktopHeight))
	for _, path := range []string{"/admin/user?id=" + u.ID, "/admin/audit?user=" + u.ID} {
		desk.open(path)
		desk.page("checked "+path, http.StatusOK)
	}
}

// shotPhone checks the page on screen at the phone width it is shown at
// and photographs it as NAME-phone.png.
func (tb *tab) shotPhone(step string) {
	tb.t.Helper()
	if w := eval[int](tb, `document.documentElement.scrollWidth`); w > phoneWidth {
		tb.t.Errorf("%s: %d px wide on a %d px phone screen", step, w, phoneWidth)
	}
	tb.screenshot(fmt.Sprintf("%s-%02d-%s-phone.png", tb.name, tb.shots.Add(1), screenshotPrefix(step)))
}

// What a helpdesk worker met in the console, in the browser: a student's
// one successful login counted as a failed password, an admin's page full
// of actions that each ended in 403, and a 403 page that led to the login.
func TestConsoleHelpdeskFixes(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t)
	u := testldap.Bob

	student := newTab(t, e)
	student.open("/user/")
	student.submitLogin(u)
	student.mustSee(signedIn, u.ID)

	desk := newTab(t, e)
	desk.open("/admin/")
	desk.submitLogin(testldap.Helpdesk)
	desk.registerAddress("helpdesk1.home@example.net", false)
	desk.click("a.button")
	desk.fill("admin-lookup-id", u.ID)
	desk.click(`form[action="/admin/user"] button[type=submit]`)
	desk.mustSee("パスワードの失敗回数 / Failed passwords\n0 / ")
	desk.page("student after one good login", http.StatusOK)

	// An admin's page offers the helpdesk no action, and says why.
	desk.open("/admin/user?id=" + testldap.Admin.ID)
	desk.mustSee("higher staff role")
	if n := eval[int](desk, `document.querySelectorAll('a[href*="/admin/action"]').length`); n != 0 {
		t.Errorf("the helpdesk is offered %d actions on an admin's page", n)
	}
	desk.page("admin's page", http.StatusOK)

	// A refused action leads back to the user, not to the login page.
	desk.open("/admin/action?action=clear-factors&id=" + u.ID)
	desk.mustSee("You are not allowed", "Back to the user")
	if strings.Contains(desk.text(), "Back to the login page") {
		t.Error("the console's 403 page offers the login page")
	}
	desk.page("refused action", http.StatusForbidden)
	desk.clickText("Back to the user")
	if got := desk.location(); !strings.HasSuffix(got, "/admin/user?id="+u.ID) {
		t.Errorf("back from the 403 page at %s", got)
	}
	desk.mustSee("User status", u.DisplayName)
}
