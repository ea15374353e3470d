package idp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/internal/testldap"
)

// TestAnonymousTrafficKeepsNothing: 300 cookie-less GETs leave no session
// row that outlives the login transaction's lifetime, while a signed-in
// session keeps its full lifetime.
func TestAnonymousTrafficKeepsNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := 0; i < 300; i++ {
		resp, err := plain.Get(e.srv.URL + "/user/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	signedIn := e.browser()
	if p := signedIn.login(testldap.Alice.ID, testldap.Alice.Password); !strings.Contains(p.body, "Signed in as") {
		t.Fatalf("login: %d", p.status)
	}
	all, err := e.db.SessionStore().AllCtx(ctx)
	if err != nil || len(all) < 300 {
		t.Fatalf("sessions before the sweep: %d (%v)", len(all), err)
	}
	// Everything that lives past the transaction lifetime (by the wall
	// clock, which the session store's expiry uses) survives this sweep.
	if _, err := e.db.DeleteExpired(ctx, time.Now().Add(e.cfg.Security.LoginTxLifetime+time.Minute)); err != nil {
		t.Fatal(err)
	}
	all, err = e.db.SessionStore().AllCtx(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("sessions living longer than the login transaction: %d (%v), want only the signed-in one", len(all), err)
	}
	if p := signedIn.follow(signedIn.get("/user/")); !strings.Contains(p.body, "Signed in as") {
		t.Fatal("the signed-in session did not survive")
	}
}

// TestCookielessBrowserGetsTheCookiesPage: a browser that never returns
// cookies is told so in both languages instead of looping between /login
// and /login?tx=.
func TestCookielessBrowserGetsTheCookiesPage(t *testing.T) {
	e := newEnv(t)
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	b := e.browser()
	b.client = plain
	p := b.follow(b.get("/user/"))
	if p.status != http.StatusBadRequest {
		t.Fatalf("cookie-less browser: status %d (Location %q), want the cookies page", p.status, p.location)
	}
	for _, want := range []string{"Cookies are required", "Cookie を有効にしてください"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("cookies page lacks %q:\n%s", want, p.body)
		}
	}
	// A browser with cookies that opens a stale link starts afresh.
	fresh := e.browser()
	if p := fresh.follow(fresh.get("/login?tx=stale")); !strings.Contains(p.body, `name="password"`) {
		t.Errorf("a stale login link does not start a new login: %d", p.status)
	}
}
