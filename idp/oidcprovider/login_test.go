package oidcprovider_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
)

// An independent relying party (go-oidc + x/oauth2) signs users in through
// the real pages with the mailed one-time password and checks the ID token.
func TestRelyingPartyLoginWithEmailOTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mfaRequired)
	web := e.rp("web")
	alice := testldap.Alice
	const addr = "alice.private@example.org"

	t.Run("first login enrolls the mailed code", func(t *testing.T) {
		b := e.browser()
		f := web.start()
		p := b.Follow(b.Get(f.url))
		p = b.password(p, alice)
		p = b.enroll(p, addr)
		tok := web.mustExchange(web.codeFrom(p, f), f)
		_, c := web.verify(tok, f)
		if c.ACR != refedsMFA {
			t.Errorf("acr = %q, want %q", c.ACR, refedsMFA)
		}
		for _, m := range []string{"pwd", "otp", "mfa"} {
			if !slices.Contains(c.AMR, m) {
				t.Errorf("amr %q lacks %q", c.AMR, m)
			}
		}
	})

	t.Run("login with the mailed code", func(t *testing.T) {
		b := e.browser()
		f := web.start()
		p := b.Follow(b.Get(f.url))
		p = b.password(p, alice)
		p = b.mailedCode(p, addr)
		code := web.codeFrom(p, f)
		if p.Status != http.StatusOK {
			t.Errorf("the hop back after the login form is status %d, want the continue page", p.Status)
		}
		tok := web.mustExchange(code, f)
		idt, c := web.verify(tok, f)
		if c.ACR != refedsMFA || !slices.Contains(c.AMR, "otp") || !slices.Contains(c.AMR, "mfa") || !slices.Contains(c.AMR, "pwd") {
			t.Errorf("acr %q amr %q, want REFEDS MFA with pwd, otp, mfa", c.ACR, c.AMR)
		}
		if idt.Subject != alice.ID {
			t.Errorf("sub = %q, want %q", idt.Subject, alice.ID)
		}
		if d := time.Since(time.Unix(c.AuthTime, 0)); d < -time.Minute || d > time.Minute {
			t.Errorf("auth_time %v is not the login time", time.Unix(c.AuthTime, 0))
		}
		info, err := web.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		var claims map[string]any
		if err := info.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"sub": alice.ID, "preferred_username": alice.ID, "name": alice.DisplayName, "email": alice.Mail}
		for k, v := range want {
			if claims[k] != v {
				t.Errorf("userinfo %s = %v, want %v", k, claims[k], v)
			}
		}
	})
}

// The claims a client gets depend on its scopes; the R&E claims are mapped
// from directory attributes.
func TestClaimsFollowScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	web.conf.Scopes = []string{"openid", "profile", "groups", "eduperson_principal_name", "eduperson_scoped_affiliation"}
	taro := testldap.Taro
	tok, _ := e.browser().login(web, taro)
	status, claims, _ := web.userinfo(http.MethodGet, tok.AccessToken, false)
	if status != http.StatusOK {
		t.Fatalf("userinfo status %d: %v", status, claims)
	}
	checks := map[string]any{
		"sub":                          taro.ID,
		"preferred_username":           taro.ID,
		"name":                         taro.DisplayName,
		"name#ja":                      taro.DisplayNameJA,
		"eduperson_principal_name":     "taro@campus.example",
		"eduperson_scoped_affiliation": []any{"student@campus.example"},
		"groups":                       []any{"students"},
	}
	for k, want := range checks {
		got := claims[k]
		if gs, ok := got.([]any); ok {
			ws := want.([]any)
			if !slices.Equal(gs, ws) {
				t.Errorf("%s = %v, want %v", k, got, want)
			}
			continue
		}
		if got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if _, ok := claims["email"]; ok {
		t.Errorf("email released without the email scope: %v", claims)
	}
	// The ID token carries the non-standard scopes' claims, not profile
	// claims (those come from userinfo unless the client asks otherwise).
	_, c := web.verify(tok, nil)
	if !slices.Equal(c.Groups, []string{"students"}) || c.Name != "" {
		t.Errorf("id_token groups %q name %q", c.Groups, c.Name)
	}
	if c.ACR != passwordACR || !slices.Equal(c.AMR, []string{"pwd"}) {
		t.Errorf("password-only login: acr %q amr %q", c.ACR, c.AMR)
	}
}

// With mfa.enrollment optional a session with the password alone is
// stepped up before any code: by acr_values asking for REFEDS MFA, and by
// a client that requires MFA.
func TestStepUpToMFA(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	tests := []struct {
		name   string
		user   testldap.User
		addr   string
		client string
		opts   []oauth2.AuthCodeOption
	}{
		{"acr_values REFEDS MFA", testldap.Bob, "bob.private@example.org", "web",
			[]oauth2.AuthCodeOption{oauth2.SetAuthURLParam("acr_values", refedsMFA)}},
		{"client with require_mfa", testldap.Taro, "taro.private@example.org", "mfa-app", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			// A password-only session first.
			tok, _ := b.login(web, tt.user)
			if _, c := web.verify(tok, nil); c.ACR != passwordACR {
				t.Fatalf("first login acr = %q, want the password acr", c.ACR)
			}
			client := e.rp(tt.client)
			f := client.start(tt.opts...)
			p := b.Follow(b.Get(f.url))
			if p.Location != "" || hasForm(p, "/login") {
				t.Fatalf("the password-only session was not stepped up (status %d, Location %q)", p.Status, p.Location)
			}
			// The user has no factor yet: the step is to register one.
			p = b.enroll(p, tt.addr)
			tok = client.mustExchange(client.codeFrom(p, f), f)
			_, c := client.verify(tok, f)
			if c.ACR != refedsMFA || !slices.Contains(c.AMR, "mfa") {
				t.Fatalf("after step-up acr %q amr %q", c.ACR, c.AMR)
			}
		})
	}
}

// The authorization request belongs to the browser that started it.
func TestLoginBoundToBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.rp("web")
	a, other := e.browser(), e.browser()
	f := web.start()
	p := a.Get(f.url)
	if !strings.HasPrefix(p.Location, "/login?tx=") {
		t.Fatalf("authorize did not start a login: %d %q", p.Status, p.Location)
	}
	// The other browser opens the same login link and signs in: it gets a
	// login of its own, to the user's page, never the client's code.
	q := other.Follow(other.Get(p.Location))
	q = other.password(q, testldap.Bob)
	if q.Status != http.StatusOK || refresh.MatchString(q.Body) || !strings.Contains(q.Body, testldap.Bob.DisplayName) {
		t.Fatalf("the other browser did not end on its own page: %d %q\n%s", q.Status, q.Location, q.Body)
	}
	// The first browser still finishes its own request.
	p = a.password(a.Follow(p), testldap.Alice)
	tok := web.mustExchange(web.codeFrom(p, f), f)
	if idt, _ := web.verify(tok, f); idt.Subject != testldap.Alice.ID {
		t.Fatalf("sub = %q, want alice", idt.Subject)
	}
}

// A login that lacks a required step never yields a code.
func TestPasswordOnlySessionGetsNoCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mfaRequired)
	web := e.rp("web")
	b := e.browser()
	f := web.start()
	p := b.Get(f.url)
	txID := strings.TrimPrefix(p.Location, "/login?tx=")
	p = b.password(b.Follow(p), testldap.Alice)
	if !hasForm(p, "/user/otp/email/send") {
		t.Fatalf("expected the enrollment step, got %d", p.Status)
	}
	// An unknown or forged request ID at the callback is an error page.
	if p := b.Get("/authorize/callback?id=forged"); p.Status != http.StatusGone || p.Location != "" {
		t.Fatalf("callback with a forged ID: %d %q", p.Status, p.Location)
	}
	// Jumping to the end of the login goes back to the missing step.
	p = b.Get(e.returnTo(txID))
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login?tx=") {
		t.Fatalf("callback of an incomplete login: %d %q", p.Status, p.Location)
	}
	// prompt=none finds no satisfying session either.
	f = web.start(oauth2.SetAuthURLParam("prompt", "none"))
	if q := web.answer(b.Get(f.url)); q.Get("error") != "login_required" || q.Get("code") != "" {
		t.Fatalf("prompt=none with a password-only session: %v", q)
	}
}

// TestPerMethodACR: oidc.acr.methods gives each second factor its own acr,
// published in discovery and demanding the factor when asked for.
func TestPerMethodACR(t *testing.T) {
	t.Parallel()
	const emailACR, appACR = "urn:example:acr:email-otp", "urn:example:acr:app"
	e := newEnv(t, func(c *config.Config) {
		c.MFA.Enrollment = config.EnrollmentOptional
		c.OIDC.ACR.Methods = config.OIDCACRMethods{EmailOTP: emailACR, TOTP: appACR}
	})
	web := e.rp("web")
	alice := testldap.Alice
	const addr = "alice.acr@example.org"

	// A password-only session is stepped up when the RP asks for a method's acr.
	b := e.browser()
	f := web.start(oauth2.SetAuthURLParam("acr_values", appACR))
	p := b.password(b.Follow(b.Get(f.url)), alice)
	p = b.enroll(p, addr)
	_, c := web.verify(web.mustExchange(web.codeFrom(p, f), f), f)
	if c.ACR != emailACR {
		t.Fatalf("acr after a mailed-code login = %q, want %q", c.ACR, emailACR)
	}
	var disc struct {
		ACRs []string `json:"acr_values_supported"`
	}
	resp, err := http.Get(e.srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&disc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{emailACR, appACR} {
		if !slices.Contains(disc.ACRs, want) {
			t.Errorf("discovery acr_values_supported %q lacks %q", disc.ACRs, want)
		}
	}
}
