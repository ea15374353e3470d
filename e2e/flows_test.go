package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/mfa"
)

// Buttons of the pages, by the form they submit.
const (
	loginButton        = `form[action="/login"] button[type=submit]`
	mfaButton          = `form[action="/mfa/verify"] button[type=submit]`
	sendButton         = `form[action="/user/otp/email/send"] button[type=submit]`
	confirmButton      = `form[action="/user/otp/email/confirm"] button[type=submit]`
	appConfirmButton   = `form[action="/user/otp/app/confirm"] button[type=submit]`
	resetLoginButton   = `form[action="/reset/login"] button[type=submit]`
	resetInitButton    = `form[action="/reset/init"] button[type=submit]`
	resetConfirmButton = `form[action="/reset/confirm"] button[type=submit]`
)

// Texts the manual shows on the screens.
const (
	signedIn       = "Signed in as"
	settingsTitle  = "ワンタイムパスワードの設定 / One-Time Password Settings"
	mfaEmailTitle  = "Multi-Factor Authentication : Email"
	mfaAppTitle    = "Multi-Factor Authentication : App"
	sentTo         = "An email message has been sent to"
	settingsDone   = "The One-Time Password settings are complete."
	loggedOut      = "You have been logged out."
	resetLinkText  = "Click here For Initial Setup or Setup Again"
	menuOTPSetting = "One Time Password Settings"
	menuLogout     = "Logout"
)

// submitLogin fills the login form on screen and presses "ログイン / Login".
func (tb *tab) submitLogin(u testldap.User) {
	tb.t.Helper()
	tb.fill("login-id", u.ID)
	tb.fill("login-password", u.Password)
	tb.click(loginButton)
}

// registerAddress runs the Email tab on screen: address, "Send One-Time
// Password", the code from the mail, "Confirm". Screens are checked and
// photographed under the step names given in steps (④ … ⑦ of the manual).
func (tb *tab) registerAddress(addr string, shots bool) {
	tb.t.Helper()
	tb.fill("otp-address", addr)
	if shots {
		tb.page("address entered", http.StatusOK)
	}
	tb.click(sendButton)
	tb.mustSee(sentTo, addr)
	if shots {
		tb.page("mail sent", http.StatusOK)
		tb.phoneLayout("mail sent")
	}
	code := tb.env.CodeFrom(addr, testenv.OTPSubject)
	tb.fill("otp-code", code)
	tb.click(confirmButton)
	tb.mustSee(settingsDone)
}

// enroll signs a user in for the first time and registers addr on the
// setup page the IdP insists on, then continues to the account page.
func (tb *tab) enroll(u testldap.User, addr string) {
	tb.t.Helper()
	tb.open("/user/")
	tb.submitLogin(u)
	tb.mustSee(settingsTitle)
	tb.registerAddress(addr, false)
	tb.click("a.button") // "ログインを続ける / Continue signing in"
	tb.mustSee(signedIn, u.ID)
}

// logout signs out through "☰" → "Logout" (⑧–⑩ of the manual).
func (tb *tab) logout(shots bool) {
	tb.t.Helper()
	tb.openMenu()
	if shots {
		tb.page("menu open", http.StatusOK)
	}
	tb.clickText(menuLogout)
	tb.mustSee(loggedOut)
	// With applications signed in to, the results page lists them.
	if tb.path() != "/logout" && tb.path() != "/logout/done" {
		tb.t.Fatalf("after logout the browser is at %s", tb.location())
	}
}

// mfaEmailLogin signs in with the password and reaches the email MFA page.
func (tb *tab) mfaEmailLogin(u testldap.User) {
	tb.t.Helper()
	tb.open("/user/")
	tb.submitLogin(u)
	tb.mustSee(mfaEmailTitle)
}

// The manual's Step 2 ①–⑩: after the first login's setup, the user changes
// the address from the account page through "☰" → "One Time Password
// Settings", then logs out through "☰" → "Logout".
func TestSetupFlow(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	tb := newTab(t, e)
	u := testldap.Alice

	// The first login leads to the setup: the user must register an address.
	tb.open("/user/")
	tb.page("login", http.StatusOK)
	tb.submitLogin(u)
	tb.mustSee(settingsTitle, "The following addresses cannot be registered.", "× @kyoto-u.ac.jp")
	tb.page("setup required", http.StatusOK)
	// A university address is refused, as the manual lists.
	tb.fill("otp-address", "someone@st.kyoto-u.ac.jp")
	tb.click(sendButton)
	tb.mustSee("This address cannot be registered.")
	tb.page("university address refused", http.StatusBadRequest)
	tb.registerAddress("alice.first@example.org", false)
	tb.page("first setup complete", http.StatusOK)
	tb.click("a.button")

	// ① the settings page URL, signed in.
	e.Clock.Advance(e.Config.MFA.Email.ResendCooldown)
	tb.open("/user/")
	tb.mustSee(signedIn, u.ID)
	tb.page("account", http.StatusOK)
	// ② "☰" in the upper right corner, ③ "One Time Password Settings".
	tb.openMenu()
	tb.page("menu", http.StatusOK)
	tb.clickText(menuOTPSetting)
	tb.mustSee(settingsTitle, "Currently registered address", mfa.MaskAddress("alice.first@example.org"))
	tb.page("settings", http.StatusOK)
	// ④–⑦ address, send, the mailed code, confirm.
	const addr = "alice.private@gmail.com"
	tb.registerAddress(addr, true)
	// ⑧ the completion message, then "☰" → ⑨ "Logout" → ⑩ done.
	tb.page("settings complete", http.StatusOK)
	tb.logout(true)
	tb.page("logged out", http.StatusOK)

	// The new address is the one the next login mails.
	tb.mfaEmailLogin(u)
	tb.mustSee(mfa.MaskAddress(addr))
	if n := e.MailCount("alice.first@example.org", "メール認証用アドレス変更のお知らせ / Notification of a change of your address for email-authentication"); n != 1 {
		t.Errorf("the old address got %d change notices, want 1", n)
	}
}

// Login with the mailed one-time password, then logout via "☰".
func TestEmailOTPLogin(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	const addr = "bob.home@example.net"
	tb := newTab(t, e)
	tb.enroll(testldap.Bob, addr)
	tb.logout(false)

	tb.mfaEmailLogin(testldap.Bob)
	tb.mustSee(testldap.Bob.ID, mfa.MaskAddress(addr))
	tb.page("mfa email", http.StatusOK)
	tb.fill("mfa-code", e.CodeFrom(addr, testenv.OTPSubject))
	tb.click(mfaButton)
	tb.mustSee(signedIn, testldap.Bob.ID, "otp")
	tb.page("signed in", http.StatusOK)
	tb.logout(false)
	tb.page("logged out", http.StatusOK)
	// Logged out means logged out: the account page asks for the password.
	tb.open("/user/")
	if !strings.HasPrefix(tb.path(), "/login") {
		t.Fatalf("after logout /user/ shows %s", tb.location())
	}
}

// "Trust this browser", then a second login on the same browser without the
// second factor; another browser is still asked.
func TestTrustThisBrowser(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	const addr = "trust@example.net"
	tb := newTab(t, e)
	tb.enroll(testldap.Alice, addr)
	tb.logout(false)

	tb.mfaEmailLogin(testldap.Alice)
	tb.fill("mfa-code", e.CodeFrom(addr, testenv.OTPSubject))
	tb.check("mfa-trust")
	tb.page("trust ticked", http.StatusOK)
	tb.click(mfaButton)
	tb.mustSee(signedIn, "Trusted browsers")
	if strings.Contains(tb.text(), "No trusted browsers.") {
		t.Fatal("the account page lists no trusted browser after ticking the box")
	}
	tb.page("account with trusted browser", http.StatusOK)
	tb.logout(false)

	sent := e.MailCount(addr, testenv.OTPSubject)
	tb.open("/user/")
	tb.submitLogin(testldap.Alice)
	tb.mustSee(signedIn, testldap.Alice.ID)
	tb.page("second login without mfa", http.StatusOK)
	if n := e.MailCount(addr, testenv.OTPSubject); n != sent {
		t.Errorf("the trusted browser's login mailed %d codes", n-sent)
	}

	other := newTab(t, e)
	other.mfaEmailLogin(testldap.Alice)
}

// The manual's "If you cannot confirm a valid one-time password" ①–⑮:
// from the MFA page to the reset, the confirmation code from the mail, a
// new address, and logout.
func TestResetFlow(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	const oldAddr, newAddr = "lost.phone@example.net", "alice.new@example.org"
	setup := newTab(t, e)
	setup.enroll(testldap.Alice, oldAddr)

	tb := newTab(t, e)
	// ① the settings page URL ② ID and password, "Login".
	tb.mfaEmailLogin(testldap.Alice)
	tb.page("mfa page", http.StatusOK)
	// ③ "Click here For Initial Setup or Setup Again".
	tb.clickText(resetLinkText)
	tb.page("reset login", http.StatusOK)
	// ④ ID and password again, "Login".
	tb.fill("reset-id", testldap.Alice.ID)
	tb.fill("reset-password", testldap.Alice.Password)
	tb.click(resetLoginButton)
	tb.mustSee("ワンタイムパスワード設定初期化 / Initialize One-Time Password Settings")
	tb.page("initialize", http.StatusOK)
	// ⑤ "Initialize" ⑥ the code page: login ID, masked address, code box.
	tb.click(resetInitButton)
	tb.mustSee("Initializing One-Time Password Settings", testldap.Alice.ID, mfa.MaskAddress(oldAddr),
		testenv.Sender, e.Config.Branding.HelpdeskPhone)
	tb.page("confirmation code", http.StatusOK)
	// ⑦ the code from the mail, ⑧ "Confirm".
	tb.fill("reset-code", e.CodeFrom(oldAddr, testenv.ResetSubject))
	tb.click(resetConfirmButton)
	tb.mustSee("The initialization is complete.", settingsTitle)
	tb.page("initialized", http.StatusOK)
	// ⑨–⑫ the new address, its code, "Confirm".
	tb.registerAddress(newAddr, true)
	// ⑬ "☰" ⑭ "Logout" ⑮ done.
	tb.page("settings complete", http.StatusOK)
	tb.logout(true)
	tb.page("logged out", http.StatusOK)

	// The old address heard of the reset; the next login mails the new one.
	if n := e.MailCount(oldAddr, "ワンタイムパスワード設定初期化のお知らせ / Notification of one time password settings initialization"); n != 1 {
		t.Errorf("the old address got %d reset notices, want 1", n)
	}
	tb.mfaEmailLogin(testldap.Alice)
	tb.mustSee(mfa.MaskAddress(newAddr))
}

// The error pages a user can meet on the way in.
func TestErrorPages(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	const addr = "errors@example.net"
	setup := newTab(t, e)
	setup.enroll(testldap.Alice, addr)

	cases := []struct {
		name   string
		run    func(tb *tab)
		status int
		want   []string
	}{
		{"wrong password", func(tb *tab) {
			tb.open("/user/")
			tb.submitLogin(testldap.User{ID: testldap.Alice.ID, Password: "not-the-password"})
		}, http.StatusUnauthorized, []string{"ECS-ID/SPS-ID またはパスワードが正しくありません。", "The ECS-ID/SPS-ID or password is incorrect."}},
		{"expired code", func(tb *tab) {
			tb.mfaEmailLogin(testldap.Alice)
			code := e.CodeFrom(addr, testenv.OTPSubject)
			e.Clock.Advance(e.Config.MFA.Email.CodeLifetime + time.Second)
			tb.fill("mfa-code", code)
			tb.click(mfaButton)
		}, http.StatusBadRequest, []string{"The One-Time Password has expired."}},
		{"wrong code", func(tb *tab) {
			e.Clock.Advance(e.Config.MFA.Email.ResendCooldown)
			tb.mfaEmailLogin(testldap.Alice)
			tb.fill("mfa-code", "000000x")
			tb.click(mfaButton)
		}, http.StatusBadRequest, []string{"The One-Time Password is incorrect."}},
		{"directory down", func(tb *tab) {
			tb.open("/user/")
			e.LDAP.Stop()
			tb.submitLogin(testldap.Alice)
		}, http.StatusServiceUnavailable, []string{"ただいまサービスを利用できません / Service temporarily unavailable", "Please try again in a few minutes."}},
		{"page not found", func(tb *tab) {
			tb.open("/no/such/page")
		}, http.StatusNotFound, []string{"The page was not found."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTab(t, e)
			tc.run(tb)
			tb.mustSee(tc.want...)
			if strings.Contains(tb.text(), signedIn) {
				t.Fatal("signed in on an error path")
			}
			tb.page(tc.name, tc.status)
		})
	}

	// The service recovers by itself once the directory is back.
	e.LDAP.Restart(t)
	e.Clock.Advance(e.Config.MFA.Email.ResendCooldown)
	tb := newTab(t, e)
	tb.mfaEmailLogin(testldap.Alice)
}

// The App tab: scan (read) the secret, confirm a code, then log in with the
// app's code.
func TestAppSetupAndLogin(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	tb := newTab(t, e)
	u := testldap.Bob
	tb.open("/user/")
	tb.submitLogin(u)
	tb.click(`a.tab[href*="tab=app"]`)
	tb.mustSee("アプリ / App", "QR")
	if !eval[bool](tb, `(() => { const i = document.querySelector('.qr img'); return !!i && i.complete && i.naturalWidth > 0; })()`) {
		t.Fatal("the QR code image did not load")
	}
	tb.page("app tab", http.StatusOK)
	secret := eval[string](tb, `document.querySelector('code.secret').textContent.trim()`)
	code, err := totp.GenerateCode(secret, e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	tb.fill("app-code", code)
	tb.click(appConfirmButton)
	tb.mustSee(settingsDone, "Recovery codes")
	if n := eval[int](tb, `document.querySelectorAll('.codes code').length`); n != 10 {
		t.Errorf("%d recovery codes shown, want 10", n)
	}
	tb.page("app registered", http.StatusOK)
	tb.click("a.button")
	tb.mustSee(signedIn)
	tb.logout(false)

	e.Clock.Advance(30 * time.Second)
	tb.open("/user/")
	tb.submitLogin(u)
	tb.mustSee(mfaAppTitle)
	tb.page("mfa app", http.StatusOK)
	tb.phoneLayout("mfa app")
	code, err = totp.GenerateCode(secret, e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	tb.fill("mfa-code", code)
	tb.click(mfaButton)
	tb.mustSee(signedIn, u.ID)
}

// Keyboard only: Tab moves through the login form in order, typing fills
// the focused field, Enter submits; the same on the MFA page. The focused
// field is visibly outlined.
func TestKeyboardOnlyLogin(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.RequireMFA)
	const addr = "keys@example.net"
	setup := newTab(t, e)
	setup.enroll(testldap.Taro, addr) // a password with spaces and non-ASCII text

	tb := newTab(t, e)
	tb.open("/user/")
	focused := func() string {
		return eval[string](tb, `document.activeElement ? document.activeElement.id : ''`)
	}
	if f := focused(); f != "login-id" {
		t.Fatalf("the login page opens with focus on %q, want the ID field", f)
	}
	if o := eval[string](tb, `getComputedStyle(document.activeElement).outlineStyle`); o == "none" {
		t.Error("the focused field has no visible outline")
	}
	tb.do(chromedp.KeyEvent(testldap.Taro.ID), chromedp.KeyEvent("\t"))
	if f := focused(); f != "login-password" {
		t.Fatalf("Tab from the ID goes to %q, want the password", f)
	}
	tb.do(chromedp.KeyEvent(testldap.Taro.Password))
	tb.navigate(chromedp.KeyEvent("\r"))
	tb.mustSee(mfaEmailTitle)
	if f := focused(); f != "mfa-code" {
		t.Fatalf("the MFA page opens with focus on %q, want the code field", f)
	}
	tb.do(chromedp.KeyEvent(e.CodeFrom(addr, testenv.OTPSubject)))
	tb.navigate(chromedp.KeyEvent("\r"))
	tb.mustSee(signedIn, testldap.Taro.ID, "山田 太郎")
	tb.page("signed in by keyboard", http.StatusOK)

	// The menu opens and logs out by keyboard too.
	tb.do(chromedp.Focus(chromedp.CSS("details.menu > summary")), chromedp.KeyEvent("\r"))
	tb.do(chromedp.KeyEvent("\t"), chromedp.KeyEvent("\t"), chromedp.KeyEvent("\t"))
	if f := eval[string](tb, `document.activeElement.textContent.trim()`); !strings.Contains(f, "Logout") {
		t.Fatalf("three Tabs into the open menu reach %q, want Logout", f)
	}
	tb.navigate(chromedp.KeyEvent("\r"))
	tb.mustSee(loggedOut)
}
