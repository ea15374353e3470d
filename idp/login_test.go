package idp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/store"
)

const genericFailureEN = "The ECS-ID/SPS-ID or password is incorrect."

const lockedEN = "Too many attempts. Please try again after the time below, or call the ICT Support Center."
const genericFailureJA = "ECS-ID/SPS-ID またはパスワードが正しくありません。"

func TestLoginThroughPages(t *testing.T) {
	e := newEnv(t)
	for _, u := range []testldap.User{testldap.Alice, testldap.Taro} {
		t.Run(u.ID, func(t *testing.T) {
			b := e.browser()
			p := b.login(u.ID, u.Password)
			if p.status != http.StatusOK || !strings.Contains(p.body, u.ID) {
				t.Fatalf("login as %s: status %d\n%s", u.ID, p.status, p.body)
			}
			if u.DisplayNameJA != "" && !strings.Contains(p.body, u.DisplayNameJA) {
				t.Errorf("account page lacks the Japanese name %q", u.DisplayNameJA)
			}
			events, err := e.db.ListAudit(context.Background(), store.AuditFilter{Subject: u.ID, Type: "login_password_ok"})
			if err != nil || len(events) != 1 {
				t.Errorf("audit login_password_ok for %s: %d events, err %v", u.ID, len(events), err)
			}
		})
	}
}

func TestLoginFailsGenerically(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, id, password, reason string
	}{
		{"wrong password", testldap.Alice.ID, "not-the-password", "wrong_password"},
		{"unknown id", "nobody-here", "whatever", "unknown_id"},
		{"empty password", testldap.Alice.ID, "", "empty_password"},
		{"disabled account", testldap.Disabled.ID, testldap.Disabled.Password, "disabled"},
		{"password with spaces trimmed", testldap.Taro.ID, strings.TrimSpace(testldap.Taro.Password), "wrong_password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			p := b.submitLogin(b.openLogin(), tc.id, tc.password)
			if p.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401\n%s", p.status, p.body)
			}
			if !strings.Contains(p.body, genericFailureEN) || !strings.Contains(p.body, genericFailureJA) {
				t.Fatalf("page lacks the generic bilingual error:\n%s", p.body)
			}
			if !strings.Contains(p.body, `value="`+tc.id+`"`) {
				t.Errorf("the typed ID was not kept in the form")
			}
			if b.follow(b.get("/user/")).body == p.body || strings.Contains(b.follow(b.get("/user/")).body, "Signed in as") {
				t.Errorf("a failed login reached the account page")
			}
			events, err := e.db.ListAudit(context.Background(), store.AuditFilter{Subject: tc.id, Type: "login_failed"})
			if err != nil || len(events) == 0 || events[0].Detail["reason"] != tc.reason {
				t.Errorf("audit reason: %+v (err %v), want %s", events, err, tc.reason)
			}
		})
	}
}

func TestInjectionIDsNeverAuthenticate(t *testing.T) {
	e := newEnv(t)
	ids := []string{"*)(uid=*", "*", "a)(|(uid=*", "user,ou=admins", "alice\x00", "alice)(uid=*", "ali*"}
	for _, id := range ids {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			b := e.browser()
			for _, pw := range []string{testldap.Alice.Password, "*"} {
				p := b.submitLogin(b.openLogin(), id, pw)
				if p.status != http.StatusUnauthorized || !strings.Contains(p.body, genericFailureEN) {
					t.Fatalf("id %q: status %d, want the generic failure", id, p.status)
				}
			}
		})
	}
}

func TestDirectoryOutageIsNotAFailure(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	form := b.openLogin()
	e.ldap.Stop()
	p := b.submitLogin(form, testldap.Alice.ID, testldap.Alice.Password)
	if p.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503\n%s", p.status, p.body)
	}
	for _, want := range []string{"ただいまサービスを利用できません", "Service temporarily unavailable", `lang="en"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("503 page lacks %q", want)
		}
	}
	c, err := e.db.GetCounter(context.Background(), "pw:id:"+testldap.Alice.ID, e.clock.Now())
	if err != nil || c.Count != 0 {
		t.Fatalf("outage counted as a failure: %+v %v", c, err)
	}
	e.ldap.Restart(t)
	if p := b.login(testldap.Alice.ID, testldap.Alice.Password); !strings.Contains(p.body, "Signed in as") {
		t.Fatalf("login after slapd restart failed: %d\n%s", p.status, p.body)
	}
}

func TestFailoverToSecondServer(t *testing.T) {
	ls := testldap.Start(t)
	dead := testldap.Start(t)
	dead.Stop()
	e := newEnvWithLDAP(t, ls, func(_ *config.Config, l *ldapstore.Config) {
		l.URLs = []string{dead.URL, ls.URL}
	})
	if p := e.browser().login(testldap.Alice.ID, testldap.Alice.Password); !strings.Contains(p.body, "Signed in as") {
		t.Fatalf("login with the first server down failed: %d\n%s", p.status, p.body)
	}
}

func TestParallelWrongPasswordsConsumeExactBudget(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *ldapstore.Config) {
		c.Security.PasswordBudget.PerID = config.Budget{Limit: 100, Window: 15 * time.Minute}
	})
	const n = 20
	forms := make([]page, n)
	browsers := make([]*browser, n)
	for i := range forms {
		browsers[i] = e.browser()
		forms[i] = browsers[i].openLogin()
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			browsers[i].submitLogin(forms[i], testldap.Bob.ID, "wrong-"+fmt.Sprint(i))
		}(i)
	}
	wg.Wait()
	c, err := e.db.GetCounter(context.Background(), "pw:id:"+testldap.Bob.ID, e.clock.Now())
	if err != nil || c.Count != n {
		t.Fatalf("budget used %d (err %v), want exactly %d", c.Count, err, n)
	}
}

func TestPasswordBudgetLocksAndExpires(t *testing.T) {
	const limit = 3
	e := newEnv(t, func(c *config.Config, _ *ldapstore.Config) {
		c.Security.PasswordBudget.PerID = config.Budget{Limit: limit, Window: 10 * time.Minute}
	})
	b := e.browser()
	for i := 0; i < limit; i++ {
		b.submitLogin(b.openLogin(), testldap.Bob.ID, "wrong")
	}
	p := b.submitLogin(b.openLogin(), testldap.Bob.ID, testldap.Bob.Password)
	// The right password on a spent budget says so (not "incorrect", which
	// would send the user to "Forgot your password?"), and when to retry.
	if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, lockedEN) || !strings.Contains(p.body, "in about 10 minutes") ||
		!strings.Contains(p.body, "試行回数が多すぎる") || strings.Contains(p.body, genericFailureEN) {
		t.Fatalf("locked account: status %d, want the lock message\n%s", p.status, p.body)
	}
	locks, _ := e.db.ListAudit(context.Background(), store.AuditFilter{Subject: testldap.Bob.ID, Type: "login_locked"})
	if len(locks) != 1 {
		t.Errorf("login_locked audit events: %d, want 1", len(locks))
	}
	// Another ID from the same address is not locked by Bob's budget.
	if p := e.browser().login(testldap.Alice.ID, testldap.Alice.Password); !strings.Contains(p.body, "Signed in as") {
		t.Fatalf("alice locked by bob's budget")
	}
	e.clock.Advance(11 * time.Minute)
	if p := b.login(testldap.Bob.ID, testldap.Bob.Password); !strings.Contains(p.body, "Signed in as") {
		t.Fatalf("lock did not expire: %d\n%s", p.status, p.body)
	}
}

func TestPerIPBudget(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *ldapstore.Config) {
		c.Security.PasswordBudget.PerIP = config.Budget{Limit: 4, Window: time.Hour}
	})
	b := e.browser()
	for i := 0; i < 4; i++ {
		b.submitLogin(b.openLogin(), fmt.Sprintf("guess%d", i), "wrong")
	}
	if p := b.submitLogin(b.openLogin(), testldap.Alice.ID, testldap.Alice.Password); p.status != http.StatusTooManyRequests {
		t.Fatalf("per-IP budget not enforced: status %d", p.status)
	}
}

func TestSessionTokenRenewedAtLogin(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	form := b.openLogin()
	before := b.cookie(e.cfg.Session.CookieName)
	if before == "" {
		t.Fatal("no session cookie before login")
	}
	b.follow(b.submitLogin(form, testldap.Alice.ID, testldap.Alice.Password))
	after := b.cookie(e.cfg.Session.CookieName)
	if after == "" || after == before {
		t.Fatalf("session token not renewed at login: before %q after %q", before, after)
	}
}

func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t)
	signedIn := func(b *browser) bool {
		return strings.Contains(b.follow(b.get("/user/")).body, "Signed in as")
	}
	t.Run("idle", func(t *testing.T) {
		b := e.browser()
		b.login(testldap.Alice.ID, testldap.Alice.Password)
		e.clock.Advance(e.cfg.Session.IdleTimeout - time.Minute)
		if !signedIn(b) {
			t.Fatal("session ended before the idle timeout")
		}
		e.clock.Advance(e.cfg.Session.IdleTimeout + time.Minute)
		if signedIn(b) {
			t.Fatal("idle session still valid")
		}
	})
	t.Run("absolute", func(t *testing.T) {
		b := e.browser()
		b.login(testldap.Alice.ID, testldap.Alice.Password)
		step := e.cfg.Session.IdleTimeout / 2
		for elapsed := time.Duration(0); elapsed < e.cfg.Session.AbsoluteTimeout-step; elapsed += step {
			e.clock.Advance(step)
			if !signedIn(b) {
				t.Fatalf("active session ended after %v", elapsed+step)
			}
		}
		e.clock.Advance(2 * step)
		if signedIn(b) {
			t.Fatal("session outlived the absolute timeout")
		}
	})
}

func TestPostWithoutCSRFTokenIsRefused(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	form := b.openLogin()
	cases := []struct {
		path string
		form url.Values
	}{
		{"/login", url.Values{"tx": {form.hidden(t, "tx")}, "username": {testldap.Alice.ID}, "password": {testldap.Alice.Password}}},
		{"/login", url.Values{"csrf_token": {"forged"}, "tx": {form.hidden(t, "tx")}, "username": {testldap.Alice.ID}, "password": {testldap.Alice.Password}}},
		{"/logout", url.Values{}},
	}
	for _, tc := range cases {
		p := b.post(tc.path, tc.form)
		if p.status != http.StatusForbidden {
			t.Errorf("POST %s %v: status %d, want 403", tc.path, tc.form, p.status)
		}
	}
	if strings.Contains(b.follow(b.get("/user/")).body, "Signed in as") {
		t.Fatal("a login without a CSRF token signed the user in")
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	p := b.login(testldap.Alice.ID, testldap.Alice.Password)
	p = b.follow(b.post("/logout", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}}))
	if !strings.Contains(p.body, "You have been logged out") {
		t.Fatalf("logout page: %d\n%s", p.status, p.body)
	}
	if strings.Contains(b.follow(b.get("/user/")).body, "Signed in as") {
		t.Fatal("still signed in after logout")
	}
}

func TestRememberID(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	form := b.openLogin()
	b.follow(b.post("/login", url.Values{
		"csrf_token": {form.hidden(t, "csrf_token")}, "tx": {form.hidden(t, "tx")},
		"username": {testldap.Alice.ID}, "password": {testldap.Alice.Password}, "remember": {"1"},
	}))
	b.post("/logout", url.Values{"csrf_token": {b.follow(b.get("/user/")).hidden(t, "csrf_token")}})
	p := b.openLogin()
	if !strings.Contains(p.body, `value="`+testldap.Alice.ID+`"`) || !strings.Contains(p.body, "checked") {
		t.Fatalf("remembered ID not pre-filled:\n%s", p.body)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	p := e.browser().openLogin()
	csp := p.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	if p.header.Get("Referrer-Policy") == "" || p.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("missing headers: %v", p.header)
	}
	if strings.Contains(p.body, "<script") || strings.Contains(p.body, "style=") {
		t.Errorf("page has inline script or style")
	}
}

func TestLoginPageFollowsTheManual(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *ldapstore.Config) {
		c.Branding.OrgName = config.Localized{JA: "京都テスト大学", EN: "Kyoto Test University"}
		c.Branding.ForgotPasswordURL = "https://password.example.ac.jp/"
		c.Branding.HelpURL = "https://help.example.ac.jp/"
	})
	p := e.browser().openLogin()
	for _, want := range []string{
		"京都テスト大学", "Kyoto Test University",
		`<span lang="ja">ログイン</span> / <span lang="en">Login</span>`,
		"ECS-ID/SPS-ID", `<span lang="ja">パスワード</span> / <span lang="en">Password</span>`,
		`<span lang="ja">ECS-ID/SPS-IDを記憶する</span> / <span lang="en">Remember ECS-ID/SPS-ID</span>`,
		`href="https://password.example.ac.jp/"`, "Forgot your password?",
		`href="https://help.example.ac.jp/"`, "Need Help?",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
}
