package idp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/store"
)

func TestCanonicalIDFoldsLookAlikes(t *testing.T) {
	for _, typed := range []string{"user0318", "ｕｓｅｒ0318", "uſer0318", "ＵＳＥＲ0318", "user０３１８", "USER0318", " User0318 "} {
		if got := idp.CanonicalID(typed); got != "user0318" {
			t.Errorf("CanonicalID(%q) = %q, want user0318", typed, got)
		}
	}
}

// auditBudgets returns the budget detail of the audit events of typ for subject.
func auditBudgets(t *testing.T, e *env, subject, typ string) map[string]int {
	t.Helper()
	events, err := e.db.ListAudit(context.Background(), store.AuditFilter{Subject: subject, Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, ev := range events {
		got[ev.Detail["budget"]]++
	}
	return got
}

// TestDeviceCookieSurvivesPasswordAttack: a victim who signed in from
// browser A before still signs in from A after 200 wrong passwords for
// their ID from other browsers behind the same address, while the
// attackers (and any browser new to the ID) are refused, all audited.
func TestDeviceCookieSurvivesPasswordAttack(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *ldapstore.Config) {
		c.Security.PasswordBudget.PerIP = config.Budget{Limit: 50, Window: 15 * time.Minute}
	})
	bob := testldap.Bob
	victim := e.browser()
	p := victim.login(bob.ID, bob.Password)
	if !strings.Contains(p.body, "Signed in as") {
		t.Fatalf("first login: %d\n%s", p.status, p.body)
	}
	victim.post("/logout", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}})

	refused := 0
	for a := 0; a < 4; a++ {
		attacker := e.browser()
		form := attacker.openLogin()
		for i := 0; i < 50; i++ {
			p := attacker.submitLogin(form, bob.ID, fmt.Sprintf("guess-%d-%d", a, i))
			generic := p.status == http.StatusUnauthorized && strings.Contains(p.body, genericFailureEN)
			locked := p.status == http.StatusTooManyRequests && strings.Contains(p.body, lockedEN)
			if !generic && !locked {
				t.Fatalf("attempt %d/%d: status %d, want the generic failure or the lock", a, i, p.status)
			}
		}
		// Even the right password from an attacker's browser is refused now.
		if p := attacker.submitLogin(form, bob.ID, bob.Password); p.status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != 4 {
		t.Errorf("%d of 4 attacking browsers were refused the right password, want all", refused)
	}
	if p := e.browser().login(bob.ID, bob.Password); strings.Contains(p.body, "Signed in as") {
		t.Error("a browser new to the ID got past the account-wide ceiling")
	}
	locks := auditBudgets(t, e, bob.ID, "login_locked")
	for _, budget := range []string{"client", "id", "ip"} {
		if locks[budget] == 0 {
			t.Errorf("no login_locked audit event for the %s budget: %v", budget, locks)
		}
	}
	if n := auditBudgets(t, e, bob.ID, "login_refused_locked"); n["id"]+n["client"]+n["ip"] < 150 {
		t.Errorf("refused attempts audited: %v, want most of the 200", n)
	}

	if p := victim.login(bob.ID, bob.Password); !strings.Contains(p.body, "Signed in as") {
		t.Fatalf("the victim's own browser was locked out: %d\n%s", p.status, p.body)
	}
}

// TestDeviceCookieHasItsOwnSmallBudget: a stolen-looking device cookie is
// no free pass; its browser stops after its own per-client budget.
func TestDeviceCookieHasItsOwnSmallBudget(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *ldapstore.Config) {
		c.Security.PasswordBudget.PerClient = config.Budget{Limit: 3, Window: 15 * time.Minute}
	})
	bob := testldap.Bob
	b := e.browser()
	p := b.login(bob.ID, bob.Password)
	b.post("/logout", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}})
	form := b.openLogin()
	for i := 0; i < 3; i++ {
		b.submitLogin(form, bob.ID, "wrong")
	}
	if p := b.submitLogin(form, bob.ID, bob.Password); p.status != http.StatusTooManyRequests {
		t.Fatalf("device budget not enforced: status %d", p.status)
	}
	if n := auditBudgets(t, e, bob.ID, "login_locked"); n["device"] != 1 {
		t.Errorf("login_locked by budget: %v, want one for the device", n)
	}
	// Another browser of the same address is not held back by it.
	if p := e.browser().login(bob.ID, bob.Password); !strings.Contains(p.body, "Signed in as") {
		t.Fatalf("another browser was locked by this browser's budget: %d", p.status)
	}
}

// TestForgedDeviceCookieIsIgnored: only a cookie signed by the IdP for this
// ID lifts the account-wide ceiling.
func TestForgedDeviceCookieIsIgnored(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *ldapstore.Config) {
		c.Security.PasswordBudget.PerClient = config.Budget{Limit: 2, Window: 15 * time.Minute}
		c.Security.PasswordBudget.PerID = config.Budget{Limit: 2, Window: 15 * time.Minute}
	})
	alice, bob := testldap.Alice, testldap.Bob
	holder := e.browser()
	holder.login(alice.ID, alice.Password) // a genuine cookie, but for alice
	u, _ := url.Parse(e.srv.URL)
	var cookies []*http.Cookie
	for _, c := range holder.jar.Cookies(u) {
		if strings.HasPrefix(c.Name, "idp_dev_") {
			cookies = append(cookies, c)
		}
	}
	if len(cookies) != 1 {
		t.Fatalf("device cookies after login: %d, want 1", len(cookies))
	}
	for i := 0; i < 2; i++ {
		b := e.browser()
		b.submitLogin(b.openLogin(), bob.ID, "wrong")
	}
	for name, value := range map[string]string{
		"alice's cookie":  cookies[0].Value,
		"tampered expiry": strings.Replace(cookies[0].Value, ".", ".9", 1),
	} {
		b := e.browser()
		b.jar.SetCookies(u, []*http.Cookie{{Name: cookies[0].Name, Value: value, Path: "/"}})
		if p := b.login(bob.ID, bob.Password); strings.Contains(p.body, "Signed in as") {
			t.Errorf("%s lifted bob's account-wide ceiling", name)
		}
	}
	e.clock.Advance(e.cfg.Security.DeviceCookieLifetime + time.Hour)
	// An expired cookie is no cookie: alice's own ceiling applies again.
	for i := 0; i < 3; i++ {
		b := e.browser()
		b.submitLogin(b.openLogin(), alice.ID, "wrong")
	}
	holder.jar.SetCookies(u, []*http.Cookie{{Name: cookies[0].Name, Value: cookies[0].Value, Path: "/"}})
	if p := holder.login(alice.ID, alice.Password); strings.Contains(p.body, "Signed in as") {
		t.Error("an expired device cookie lifted the account-wide ceiling")
	}
}

// TestLookAlikeIDsShareOneBudget: every spelling the directory folds to one
// account spends that account's budget.
func TestLookAlikeIDsShareOneBudget(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *ldapstore.Config) {
		c.Security.PasswordBudget.PerClient = config.Budget{Limit: 4, Window: 15 * time.Minute}
	})
	b := e.browser()
	form := b.openLogin()
	for _, id := range []string{"ｂｏｂ", "ＢＯＢ", "Bob", "bob"} {
		if p := b.submitLogin(form, id, "wrong"); p.status != http.StatusUnauthorized {
			t.Fatalf("%q: status %d", id, p.status)
		}
	}
	if p := b.submitLogin(form, "bob", testldap.Bob.Password); p.status != http.StatusTooManyRequests {
		t.Fatalf("look-alike IDs had budgets of their own: status %d, want the locked answer", p.status)
	}
	c, err := e.db.GetCounter(context.Background(), "pw:id:bob", e.clock.Now())
	if err != nil || c.Count != 5 {
		t.Fatalf("account-wide count %d (%v), want 5", c.Count, err)
	}
	// Once the client's window has passed, the folded spelling logs in
	// like the stored one.
	e.clock.Advance(16 * time.Minute)
	if p := e.browser().login("ＢＯＢ", testldap.Bob.Password); !strings.Contains(p.body, "Signed in as") {
		t.Fatalf("full-width ID did not log in: %d", p.status)
	}
}

// TestIDsOutsideThePatternNeverReachLDAP: anything but the campus ID
// characters gets the generic error and never reaches the directory.
func TestIDsOutsideThePatternNeverReachLDAP(t *testing.T) {
	e := newEnv(t)
	ids := []string{"bob!x", "山田太郎", "bob smith", "bob)(uid=*", strings.Repeat("b", 65), "bob\u200b"}
	b := e.browser()
	form := b.openLogin()
	for _, id := range ids {
		p := b.submitLogin(form, id, "whatever")
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, genericFailureEN) {
			t.Fatalf("%q: status %d, want the generic failure", id, p.status)
		}
		events, err := e.db.ListAudit(context.Background(), store.AuditFilter{Subject: id, Type: "login_failed"})
		if err != nil || len(events) == 0 || events[0].Detail["reason"] != ldapstore.ReasonInvalidID {
			t.Errorf("%q: audit %+v (%v), want reason invalid_id", id, events, err)
		}
	}
	log := e.ldap.Log()
	for _, frag := range []string{"bob!x", "bob smith", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", `bob\29`, "bob)"} {
		if strings.Contains(log, frag) {
			t.Errorf("slapd saw %q", frag)
		}
	}
	c, err := e.db.GetCounter(context.Background(), "pw:id:bob", e.clock.Now())
	if err != nil || c.Count != 0 {
		t.Errorf("junk IDs spent bob's budget: %d (%v)", c.Count, err)
	}
}
