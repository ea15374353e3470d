package oidcprovider_test

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/store"
)

// logoutRP is a relying party's back-channel logout endpoint.
type logoutRP struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens []string
	status int
}

func newLogoutRP(t *testing.T, status int) *logoutRP {
	rp := &logoutRP{status: status}
	rp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		rp.mu.Lock()
		rp.tokens = append(rp.tokens, r.PostForm.Get("logout_token"))
		rp.mu.Unlock()
		w.WriteHeader(rp.status)
	}))
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *logoutRP) received() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]string(nil), rp.tokens...)
}

// withLogoutClients gives "web" a back-channel and "post" a front-channel
// logout URI.
func withLogoutClients(backchannel string) envOption {
	return func(c *config.Config) {
		for i := range c.OIDC.Clients {
			switch c.OIDC.Clients[i].ID {
			case "web":
				c.OIDC.Clients[i].BackchannelLogoutURI = backchannel
			case "post":
				c.OIDC.Clients[i].FrontchannelLogoutURI = "https://post.campus.example/fc-logout?app=1"
			}
		}
	}
}

func sidOf(t *testing.T, r *rp, raw string) string {
	t.Helper()
	idt, err := r.provider.Verifier(&gooidc.Config{ClientID: r.id}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	_ = idt.Claims(&c)
	return c.SID
}

// TestDiscoveryAdvertisesLogout: discovery offers Back- and Front-Channel
// Logout with sid.
func TestDiscoveryAdvertisesLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, doc := getJSON(t, e.issuer+"/.well-known/openid-configuration")
	for _, k := range []string{"backchannel_logout_supported", "backchannel_logout_session_supported",
		"frontchannel_logout_supported", "frontchannel_logout_session_supported"} {
		if doc[k] != true {
			t.Errorf("%s = %v, want true", k, doc[k])
		}
	}
}

// TestLogoutReachesBackAndFrontChannelClients: ID tokens of clients with a
// logout URI carry the session's sid (others none); the ☰ menu's Logout
// posts a verified logout token to the back-channel client and frames the
// front-channel one with iss and sid; the confirmation lists both.
func TestLogoutReachesBackAndFrontChannelClients(t *testing.T) {
	t.Parallel()
	bc := newLogoutRP(t, http.StatusOK)
	e := newEnv(t, withLogoutClients(bc.srv.URL+"/bc"))
	b := e.browser()
	web, post, spa := e.rp("web"), e.rp("post"), e.rp("spa")
	tok, _ := b.login(web, testldap.Alice)
	sid := sidOf(t, web, tok.Extra("id_token").(string))
	if sid == "" {
		t.Fatal("no sid in the ID token of a back-channel client")
	}
	tok, _ = b.login(post, testldap.Alice)
	if got := sidOf(t, post, tok.Extra("id_token").(string)); got != sid {
		t.Errorf("front-channel client's sid = %q, want the session's %q", got, sid)
	}
	tok, _ = b.login(spa, testldap.Alice)
	if got := sidOf(t, spa, tok.Extra("id_token").(string)); got != "" {
		t.Errorf("a client without logout URIs got sid %q", got)
	}

	// end_session without a hint asks, and says who will be told.
	confirm := b.Follow(b.Get("/end_session"))
	for _, name := range []string{"Web portal", "Form-post app", "Single-page app"} {
		if !strings.Contains(confirm.Body, name) {
			t.Errorf("the confirmation does not list %q", name)
		}
	}
	user := b.Get("/user/")
	walk := b.Follow(b.Post("/logout", url.Values{"csrf_token": {user.Hidden(t, "csrf_token")}}))
	if !strings.Contains(walk.Body, "data-logout-walk") {
		t.Fatalf("no logout page: %d\n%s", walk.Status, walk.Body)
	}
	if !strings.Contains(walk.Body, "data-frontchannel") {
		t.Error("logout.js is not told to wait for the front-channel frame")
	}
	m := regexp.MustCompile(`<iframe src="([^"]+)"`).FindStringSubmatch(walk.Body)
	if m == nil {
		t.Fatalf("no front-channel frame:\n%s", walk.Body)
	}
	fc, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil || fc.Host != "post.campus.example" || fc.Query().Get("iss") != e.issuer ||
		fc.Query().Get("sid") != sid || fc.Query().Get("app") != "1" {
		t.Errorf("front-channel frame %q", m[1])
	}
	if csp := walk.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "https://post.campus.example") {
		t.Errorf("CSP %q does not allow the front-channel frame", csp)
	}

	tokens := bc.received()
	if len(tokens) != 1 {
		t.Fatalf("%d logout tokens, want 1", len(tokens))
	}
	lt, err := web.provider.Verifier(&gooidc.Config{ClientID: "web"}).Verify(context.Background(), tokens[0])
	if err != nil {
		t.Fatalf("logout token: %v", err)
	}
	var claims map[string]any
	_ = lt.Claims(&claims)
	events, _ := claims["events"].(map[string]any)
	if _, ok := events["http://schemas.openid.net/event/backchannel-logout"]; !ok || claims["sid"] != sid || claims["nonce"] != nil ||
		claims["sub"] == nil || claims["jti"] == nil || claims["iss"] != e.issuer {
		t.Errorf("logout token claims %v", claims)
	}
	jws, _ := jose.ParseSigned(tokens[0], []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if typ := jws.Signatures[0].Header.ExtraHeaders["typ"]; typ != "logout+jwt" {
		t.Errorf("typ = %v", typ)
	}

	u, _ := url.Parse(walk.URL)
	done := b.Follow(b.Get("/logout/done?id=" + u.Query().Get("id")))
	for _, want := range []string{"Web portal", "Logged out", "Form-post app", "Logout requested", "Single-page app", "Does not support logout"} {
		if !strings.Contains(done.Body, want) {
			t.Errorf("results lack %q:\n%s", want, done.Body)
		}
	}
	// Each application's outcome is audited once.
	results := map[string]string{}
	for _, typ := range []string{"logout_propagated", "logout_propagation_failed"} {
		events, _ := e.db.ListAudit(context.Background(), store.AuditFilter{Type: typ})
		for _, ev := range events {
			if _, dup := results[ev.Detail["service"]]; dup {
				t.Errorf("%s audited twice", ev.Detail["service"])
			}
			results[ev.Detail["service"]] = ev.Detail["channel"] + "/" + ev.Detail["result"]
		}
	}
	want := map[string]string{"web": "back/ok", "post": "front/requested", "spa": "none/unsupported"}
	for k, v := range want {
		if results[k] != v {
			t.Errorf("audited %v, want %v", results, want)
			break
		}
	}
}

// TestEndSessionWithHintTellsTheOthers: an end_session with a verified
// hint from one client tells the back-channel client, not the one that
// asked, and then returns to the asking client's post-logout URI.
func TestEndSessionWithHintTellsTheOthers(t *testing.T) {
	t.Parallel()
	bc := newLogoutRP(t, http.StatusNoContent)
	e := newEnv(t, withLogoutClients(bc.srv.URL+"/bc"), func(c *config.Config) {
		for i := range c.OIDC.Clients {
			if c.OIDC.Clients[i].ID == "jwt" {
				c.OIDC.Clients[i].PostLogoutRedirectURIs = []string{rpBase + "/jwt/bye"}
			}
		}
	})
	b := e.browser()
	b.login(e.rp("web"), testldap.Alice)
	tok, _ := b.login(e.rp("jwt"), testldap.Alice)
	q := url.Values{"id_token_hint": {tok.Extra("id_token").(string)}, "post_logout_redirect_uri": {rpBase + "/jwt/bye"}, "state": {"s9"}}
	p := b.Follow(b.Get("/end_session?" + q.Encode()))
	if !strings.Contains(p.Body, rpBase+"/jwt/bye?state=s9") {
		t.Fatalf("logout did not return to the asking client: %d %q\n%s", p.Status, p.Location, p.Body)
	}
	if n := len(bc.received()); n != 1 {
		t.Errorf("the back-channel client got %d tokens, want 1", n)
	}
}

// TestFailingBackchannelIsRetriedThenReported: a back-channel endpoint
// that keeps failing gets the configured number of attempts; the user's
// page is not held beyond the first, and the end is logged, audited,
// counted and shown.
func TestFailingBackchannelIsRetriedThenReported(t *testing.T) {
	t.Parallel()
	bc := newLogoutRP(t, http.StatusInternalServerError)
	e := newEnv(t, withLogoutClients(bc.srv.URL+"/bc"), func(c *config.Config) {
		c.Logout.Backchannel = config.BackchannelLogout{Timeout: time.Second, Attempts: 3, Backoff: 50 * time.Millisecond}
	})
	b := e.browser()
	b.login(e.rp("web"), testldap.Alice)
	user := b.Get("/user/")
	p := b.Post("/logout", url.Values{"csrf_token": {user.Hidden(t, "csrf_token")}})
	first := b.Follow(p)
	if !strings.Contains(first.Body, "No answer yet; retrying") {
		t.Errorf("the results do not say the client is being retried:\n%s", first.Body)
	}
	e.prov.WaitForLogouts()
	if n := len(bc.received()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	again := b.Get(p.Location)
	if !strings.Contains(again.Body, "Could not be logged out") {
		t.Errorf("the results do not report the failure:\n%s", again.Body)
	}
	events, _ := e.db.ListAudit(context.Background(), store.AuditFilter{Type: "logout_propagation_failed"})
	if len(events) != 1 || events[0].Detail["service"] != "web" || events[0].Detail["channel"] != "back" {
		t.Errorf("audit: %+v", events)
	}
	if !strings.Contains(e.logs.String(), "back-channel logout not delivered") {
		t.Error("the failure is not logged")
	}
	if got := scrapeMetric(t, e, `idp_logout_propagation_total{channel="back",protocol="oidc",result="failed"}`); got != "1" {
		t.Errorf("metric = %q, want 1", got)
	}
}

func scrapeMetric(t *testing.T, e *env, series string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestLogoutLimitsAreEnforced: a hanging back-channel endpoint holds the
// user's logout no longer than logout.backchannel.timeout; a session
// remembers at most logout.max_services applications (the newest); the
// logout page waits logout.front_channel_wait before its no-script refresh.
func TestLogoutLimitsAreEnforced(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hang.Close() })
	e := newEnv(t, withLogoutClients(hang.URL+"/bc"), func(c *config.Config) {
		c.Logout.MaxServices = 2
		c.Logout.FrontChannelWait = 7 * time.Second
		c.Logout.Backchannel = config.BackchannelLogout{Timeout: 300 * time.Millisecond, Attempts: 1, Backoff: time.Second}
	})
	b := e.browser()
	b.login(e.rp("web"), testldap.Alice)  // back channel, hangs
	b.login(e.rp("post"), testldap.Alice) // front channel
	b.login(e.rp("spa"), testldap.Alice)  // none; pushes out the oldest (web)
	user := b.Get("/user/")
	p := b.Post("/logout", url.Values{"csrf_token": {user.Hidden(t, "csrf_token")}})
	walk := b.Follow(p)
	if strings.Contains(walk.Body, "Web portal") || !strings.Contains(walk.Body, "Form-post app") || !strings.Contains(walk.Body, "Single-page app") {
		t.Errorf("max_services 2 should keep the newest two applications:\n%s", walk.Body)
	}
	if !strings.Contains(walk.Body, `content="7;url=/logout/done?id=`) || !strings.Contains(walk.Body, `data-wait="7000"`) {
		t.Errorf("the logout page does not wait front_channel_wait:\n%s", walk.Body)
	}

	// With the back-channel client remembered, its hanging endpoint holds
	// the logout for the timeout only.
	b2 := e.browser()
	b2.login(e.rp("web"), testldap.Bob)
	user = b2.Get("/user/")
	start := time.Now()
	p = b2.Post("/logout", url.Values{"csrf_token": {user.Hidden(t, "csrf_token")}})
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("logout with a hanging back channel took %s, want about the 300ms timeout", d)
	}
	if done := b2.Follow(p); !strings.Contains(done.Body, "Could not be logged out") {
		t.Errorf("a back channel that timed out on its only attempt is not reported:\n%s", done.Body)
	}
}
