package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/mfa"
)

// The manual's bilingual layout, screen by screen: its labels as
// "日本語 / English" on one element, its paragraphs as Japanese above
// English. (Every screen is also checked for lang attributes and the
// Japanese-first order by page.)
func TestManualBilingualLayout(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t) // optional enrollment: Bob signs in without a factor
	const addr = "bob.layout@example.net"
	tb := newTab(t, e)
	u := testldap.Bob

	screens := []struct {
		name string
		// reach moves the tab to the screen from the previous one.
		reach func()
		// want are texts as the screen shows them (innerText: a line break
		// between the Japanese and the English paragraph).
		want []string
	}{
		{"login", func() { tb.open("/user/") }, []string{
			"統合認証システム",
			"ログイン / Login",
			"ECS-ID/SPS-ID",
			"パスワード / Password",
			"ECS-ID/SPS-IDを記憶する / Remember ECS-ID/SPS-ID",
		}},
		{"settings", func() {
			tb.submitLogin(u)
			tb.openMenu()
			tb.clickText(menuOTPSetting)
		}, []string{
			"ワンタイムパスワードの設定 / One-Time Password Settings",
			"メール / Email", "アプリ / App",
			"指定したアドレスにワンタイムパスワードを送信するための設定を行います。プライベートなアドレスを入力してください。\nConfigure settings to send one-time passwords by email. Please enter a private email address.",
			"メール認証用アドレス / Address for email-authentication",
			"ワンタイムパスワード / One-Time Password",
			"メールに記載されているワンタイムパスワードを入力してください。\nEnter the 'One-Time Password' provided in the email.",
			"確認 / Confirm",
			"次のアドレスは登録できません。\nThe following addresses cannot be registered.",
			"× @st.kyoto-u.ac.jp", "× @kyoto-u.ac.jp", "× @ms.c.kyoto-u.ac.jp",
		}},
		{"settings mail sent", func() {
			tb.fill("otp-address", addr)
			tb.click(sendButton)
		}, []string{
			"メールを送信しました。メールに記載されているワンタイムパスワードを入力してください。\nEmail has been sent. Please enter the 'One-Time Password' provided in the email.",
			"An email message has been sent to: " + addr,
		}},
		{"mfa email", func() {
			tb.fill("otp-code", e.CodeFrom(addr, testenv.OTPSubject))
			tb.click(confirmButton)
			tb.logout(false)
			tb.open("/user/")
			tb.submitLogin(u)
		}, []string{
			"多要素認証 : メール\nMulti-Factor Authentication : Email",
			"ECS-ID/SPS-ID\n" + u.ID,
			"ワンタイムパスワード / One-Time Password",
			"このブラウザを信頼する / Trust this browser",
			"ログイン / Login",
			"初回設定・再設定はこちら\nClick here For Initial Setup or Setup Again",
		}},
		{"reset login", func() { tb.clickText(resetLinkText) }, []string{
			"ログイン / Login",
			"ECS-ID/SPS-ID",
			"パスワード / Password",
		}},
		{"reset initialize", func() {
			tb.fill("reset-id", u.ID)
			tb.fill("reset-password", u.Password)
			tb.click(resetLoginButton)
		}, []string{
			"ワンタイムパスワード設定初期化 / Initialize One-Time Password Settings",
			"初期化ボタンを押すと、メール認証用アドレスにワンタイムパスワード設定初期化のご案内を送信します。",
			"\nWhen you press",
			"初期化 / Initialize",
		}},
		{"reset code", func() { tb.click(resetInitButton) }, []string{
			"ワンタイムパスワード設定の初期化 / Initializing One-Time Password Settings",
			"ログインID / Login ID\n" + u.ID,
			"メール認証用アドレス / Address for email-authentication\n" + mfa.MaskAddress(addr),
			"メールを送信しました。メールに記載されている「確認コード」を入力してください。\nAn email has been sent to you. Please enter the \"Confirmation Code\" in the email.",
			testenv.Sender,
			"TEL: " + e.Config.Branding.HelpdeskPhone,
			"確認コード / Confirm Code",
			"再送信 / Resend",
			"確認 / Confirm",
		}},
	}
	for _, s := range screens {
		s.reach()
		body := tb.text()
		for _, w := range s.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: the screen does not show %q", s.name, w)
			}
		}
		// Every heading carries both languages, the Japanese marked as such.
		if !eval[bool](tb, `Array.from(document.querySelectorAll('main h1, main h2')).every((h) => h.querySelector('[lang=ja]') && h.querySelector('[lang=en]'))`) {
			t.Errorf("%s: a heading lacks its Japanese or its English part", s.name)
		}
		tb.page("manual "+s.name, http.StatusOK)
	}
	// The placeholder paragraph is for users with no address (issue 14,
	// item 11); this user has one.
	if strings.Contains(tb.text(), mfa.MaskAddress(e.Config.MFA.Email.PlaceholderAddress)) {
		t.Error("reset code: the placeholder address is shown although an address is registered")
	}
}
