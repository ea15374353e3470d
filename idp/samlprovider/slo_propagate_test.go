package samlprovider_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
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
	saml2 "github.com/russellhaering/gosaml2"
	"golang.org/x/oauth2"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/internal/testldap"
)

// A third SP with a front-channel SLO endpoint (HTTP-POST).
func sp3(t testing.TB) spSite {
	return spSite{
		EntityID: "https://sp3.campus.example/sp",
		ACS:      []string{"https://sp3.campus.example/saml/acs"},
		SLO:      "https://sp3.campus.example/saml/slo",
		SignKey:  testKey(t, keySPOther),
	}
}

const rpClientSecret = "relying-party-secret-of-at-least-32-bytes"

// backchannelRP is OIDC client C's server: its redirect URI and its
// backchannel_logout_uri, which keeps every logout token it gets.
type backchannelRP struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens []string
	fail   bool
}

func newBackchannelRP(t *testing.T) *backchannelRP {
	rp := &backchannelRP{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /bc", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		rp.mu.Lock()
		defer rp.mu.Unlock()
		rp.tokens = append(rp.tokens, r.PostForm.Get("logout_token"))
		if rp.fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	rp.srv = httptest.NewServer(mux)
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *backchannelRP) received() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]string(nil), rp.tokens...)
}

func (rp *backchannelRP) client() config.OIDCClient {
	return config.OIDCClient{ID: "portal", Name: "Portal C", Secret: config.SecretValue(rpClientSecret),
		RedirectURIs: []string{rp.srv.URL + "/cb"}, BackchannelLogoutURI: rp.srv.URL + "/bc"}
}

func withOIDCClient(c config.OIDCClient) envOption {
	return func(e *env, cfg *config.Config) {
		e.withOIDC = true
		cfg.OIDC.Clients = append(cfg.OIDC.Clients, c)
	}
}

// oidcLogin signs the browser in to client C by single sign-on and
// returns the sid of its verified ID token.
func oidcLogin(t *testing.T, e *env, b *browser, rp *backchannelRP) string {
	t.Helper()
	ctx := context.Background()
	prov, err := gooidc.NewProvider(ctx, e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := prov.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInHeader
	conf := oauth2.Config{ClientID: "portal", ClientSecret: rpClientSecret, Endpoint: endpoint,
		RedirectURL: rp.srv.URL + "/cb", Scopes: []string{gooidc.ScopeOpenID}}
	verifier := oauth2.GenerateVerifier()
	p := b.Follow(b.Get(conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n0nce"))))
	loc, err := url.Parse(p.Location)
	if err != nil || !strings.HasPrefix(p.Location, rp.srv.URL+"/cb") || loc.Query().Get("code") == "" {
		t.Fatalf("single sign-on to the OIDC client: %d %q\n%s", p.Status, p.Location, p.Body)
	}
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := prov.Verifier(&gooidc.Config{ClientID: "portal"}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&c); err != nil || c.SID == "" {
		t.Fatalf("the ID token of a client with a backchannel_logout_uri has no sid (%v)", err)
	}
	return c.SID
}

// verifyLogoutToken checks a logout token as Back-Channel Logout 1.0
// section 2.6 asks of the RP: signature against the JWKS, iss, aud, exp,
// typ, the events member, the sid, and no nonce.
func verifyLogoutToken(t *testing.T, e *env, token, wantSID string) {
	t.Helper()
	ctx := context.Background()
	prov, err := gooidc.NewProvider(ctx, e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	lt, err := prov.Verifier(&gooidc.Config{ClientID: "portal"}).Verify(ctx, token)
	if err != nil {
		t.Fatalf("logout token: %v", err)
	}
	var claims map[string]any
	if err := lt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	events, _ := claims["events"].(map[string]any)
	if _, ok := events["http://schemas.openid.net/event/backchannel-logout"]; !ok {
		t.Errorf("events = %v", claims["events"])
	}
	if claims["sid"] != wantSID {
		t.Errorf("sid = %v, want the ID token's %q", claims["sid"], wantSID)
	}
	if _, ok := claims["nonce"]; ok {
		t.Error("a logout token must not carry a nonce")
	}
	for _, k := range []string{"iat", "jti", "exp"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("no %s", k)
		}
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Header.ExtraHeaders["typ"]; typ != "logout+jwt" {
		t.Errorf("typ = %v, want logout+jwt", typ)
	}
}

var iframeRe = regexp.MustCompile(`<iframe src="([^"]+)"`)

// walkFrames loads the logout page's frames as a browser would and lets
// each SP answer its LogoutRequest: the SP (gosaml2) checks the request
// and posts a signed LogoutResponse back into the frame.
func walkFrames(t *testing.T, b *browser, walk page, sps map[string]*saml2.SAMLServiceProvider, names map[string]string) {
	t.Helper()
	frames := iframeRe.FindAllStringSubmatch(walk.Body, -1)
	if len(frames) != len(sps) {
		t.Fatalf("%d frames, want %d:\n%s", len(frames), len(sps), walk.Body)
	}
	for _, f := range frames {
		p := b.Get(html.UnescapeString(f[1]))
		m := regexp.MustCompile(`action="([^"]+)"`).FindStringSubmatch(p.Body)
		if p.Status != http.StatusOK || m == nil {
			t.Fatalf("frame %s: %d\n%s", f[1], p.Status, p.Body)
		}
		if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self'") {
			t.Errorf("frame page CSP %q", csp)
		}
		sp := sps[html.UnescapeString(m[1])]
		if sp == nil {
			t.Fatalf("frame posts to %q, no SP there", m[1])
		}
		req, err := sp.ValidateEncodedLogoutRequestPOST(p.Hidden(t, "SAMLRequest"))
		if err != nil {
			t.Fatalf("SP %s refused the LogoutRequest: %v", sp.ServiceProviderIssuer, err)
		}
		if req.NameID == nil || req.NameID.Value != names[sp.ServiceProviderIssuer] {
			t.Errorf("LogoutRequest to %s names %+v, want %q", sp.ServiceProviderIssuer, req.NameID, names[sp.ServiceProviderIssuer])
		}
		doc, err := sp.BuildLogoutResponseDocument(saml2.StatusCodeSuccess, req.ID)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := doc.WriteToBytes()
		answer := b.Post(samlprovider.PathSLO, url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(raw)}})
		if answer.Status != http.StatusOK || strings.TrimSpace(answer.Body) != "ok" {
			t.Errorf("the IdP took %s's LogoutResponse as %d %q", sp.ServiceProviderIssuer, answer.Status, answer.Body)
		}
	}
}

type sloSetup struct {
	e                *env
	b                *browser
	rp               *backchannelRP
	spA, spB         *saml2.SAMLServiceProvider
	infoA, infoB     *saml2.AssertionInfo
	sid              string
	siteA, siteB     spSite
	namesByIssuer    map[string]string
	walkStatusChecks bool
}

// signedInEverywhere: Bob signs in at SAML SP A, then by single sign-on
// at SAML SP B and at OIDC client C (back channel).
func signedInEverywhere(t *testing.T, fail bool, extra ...envOption) *sloSetup {
	rp := newBackchannelRP(t)
	rp.fail = fail
	siteA, siteB := sp1(t), sp3(t)
	opts := append([]envOption{
		withSP(siteA, config.SAMLServiceProvider{Name: "Learning System A", Attributes: []string{"mail"}}),
		withSP(siteB, config.SAMLServiceProvider{Name: "Library B", Attributes: []string{"mail"}}),
		withOIDCClient(rp.client()), optionalMFA,
	}, extra...)
	e := newEnv(t, opts...)
	s := &sloSetup{e: e, b: e.browser(), rp: rp, siteA: siteA, siteB: siteB}
	s.spA, s.spB = e.serviceProvider(siteA), e.serviceProvider(siteB)
	s.spA.NameIdFormat = samlprovider.NameIDFormatPersistent
	s.spB.NameIdFormat = samlprovider.NameIDFormatPersistent
	id, target := redirectURL(t, s.spA, "")
	s.infoA = checkResponse(t, s.spA, siteA, s.b.expectPost(s.b.Follow(s.b.submitLogin(s.b.Follow(s.b.Get(target)), testldap.Bob))), id)
	id, target = redirectURL(t, s.spB, "")
	s.infoB = checkResponse(t, s.spB, siteB, s.b.expectPost(s.b.Follow(s.b.Get(target))), id)
	s.sid = oidcLogin(t, e, s.b, rp)
	s.namesByIssuer = map[string]string{siteA.EntityID: s.infoA.NameID, siteB.EntityID: s.infoB.NameID}
	return s
}

func (s *sloSetup) signedOutAt(t *testing.T, sp *saml2.SAMLServiceProvider) {
	t.Helper()
	sp.IsPassive = true
	defer func() { sp.IsPassive = false }()
	_, target := redirectURL(t, sp, "")
	p := s.b.Follow(s.b.Get(target))
	if strings.Contains(p.Body, `name="SAMLResponse"`) {
		if _, err := sp.RetrieveAssertionInfo(s.b.expectPost(p).response); err == nil {
			t.Errorf("the IdP session still signs in to %s", sp.ServiceProviderIssuer)
		}
	}
}

// TestLogoutAtOneSPReachesEveryService: a LogoutRequest from SAML SP A
// ends the sessions at SAML SP B (front channel: a LogoutRequest in a
// frame of the logout page, answered by B) and at OIDC client C (a
// back-channel logout token that C verifies), then answers A with Success.
func TestLogoutAtOneSPReachesEveryService(t *testing.T) {
	s := signedInEverywhere(t, false)
	e, b := s.e, s.b

	doc, err := s.spA.BuildLogoutRequestDocument(s.infoA.NameID, s.infoA.SessionIndex)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := doc.WriteToBytes()
	walk := b.Follow(b.Post(samlprovider.PathSLO, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}}))
	if walk.Status != http.StatusOK || !strings.Contains(walk.Body, "data-logout-walk") {
		t.Fatalf("A's LogoutRequest did not lead to the logout page: %d %s\n%s", walk.Status, walk.URL, walk.Body)
	}
	for _, want := range []string{"Library B", "Portal C", "/static/logout.js"} {
		if !strings.Contains(walk.Body, want) {
			t.Errorf("the logout page lacks %q", want)
		}
	}
	if strings.Contains(walk.Body, "Learning System A") {
		t.Error("the logout page lists the SP that asked (it gets its own answer)")
	}
	if csp := walk.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-src 'self' https://sp3.campus.example") ||
		strings.Contains(csp, "unsafe-inline") {
		t.Errorf("logout page CSP %q", csp)
	}

	// C was told over the back channel before the page was shown.
	tokens := s.rp.received()
	if len(tokens) != 1 {
		t.Fatalf("client C got %d logout tokens, want 1", len(tokens))
	}
	verifyLogoutToken(t, e, tokens[0], s.sid)

	walkFrames(t, b, walk, map[string]*saml2.SAMLServiceProvider{s.siteB.SLO: s.spB}, s.namesByIssuer)

	// The page's script reads the progress: nothing is pending any more.
	u, _ := url.Parse(walk.URL)
	status := b.Get("/logout/status?id=" + u.Query().Get("id"))
	var st struct {
		Items []struct{ Result string } `json:"items"`
	}
	if err := json.Unmarshal([]byte(status.Body), &st); err != nil || len(st.Items) != 2 {
		t.Fatalf("status %d %s", status.Status, status.Body)
	}
	for _, it := range st.Items {
		if it.Result != "ok" {
			t.Errorf("status %s", status.Body)
		}
	}

	// Everything was logged out: the results lead straight back to A with
	// its LogoutResponse.
	answer := b.expectPost(b.Follow(b.Get("/logout/done?id=" + u.Query().Get("id"))))
	if answer.action != s.siteA.SLO {
		t.Errorf("LogoutResponse posted to %q, want A's SLO %q", answer.action, s.siteA.SLO)
	}
	resp, err := s.spA.ValidateEncodedLogoutResponsePOST(answer.response)
	if err != nil {
		t.Fatalf("A refused the LogoutResponse: %v", err)
	}
	if resp.Status.StatusCode.Value != saml2.StatusCodeSuccess {
		t.Errorf("A got status %+v", resp.Status)
	}
	decoded, _ := base64.StdEncoding.DecodeString(answer.response)
	if strings.Contains(string(decoded), "PartialLogout") {
		t.Error("a complete logout answered PartialLogout")
	}
	s.signedOutAt(t, s.spA)
	s.signedOutAt(t, s.spB)

	for _, typ := range []string{"saml_logout", "logout_propagated"} {
		if len(e.audited(typ)) == 0 {
			t.Errorf("no %s audit event", typ)
		}
	}
	if n := len(e.audited("logout_propagated")); n != 2 {
		t.Errorf("%d logout_propagated events, want 2 (B and C)", n)
	}
}

// TestMenuLogoutReachesEveryService: the ☰ menu's Logout tells both SAML
// SPs by the front channel and the OIDC client by the back channel, and
// the results page lists each.
func TestMenuLogoutReachesEveryService(t *testing.T) {
	s := signedInEverywhere(t, false)
	e, b := s.e, s.b
	user := b.Get("/user/")
	walk := b.Follow(b.Post("/logout", url.Values{"csrf_token": {user.Hidden(t, "csrf_token")}}))
	if walk.Status != http.StatusOK || !strings.Contains(walk.Body, "data-logout-walk") {
		t.Fatalf("Logout did not lead to the logout page: %d %s\n%s", walk.Status, walk.URL, walk.Body)
	}
	tokens := s.rp.received()
	if len(tokens) != 1 {
		t.Fatalf("client C got %d logout tokens, want 1", len(tokens))
	}
	verifyLogoutToken(t, e, tokens[0], s.sid)
	walkFrames(t, b, walk, map[string]*saml2.SAMLServiceProvider{s.siteA.SLO: s.spA, s.siteB.SLO: s.spB}, s.namesByIssuer)

	u, _ := url.Parse(walk.URL)
	done := b.Follow(b.Get("/logout/done?id=" + u.Query().Get("id")))
	if done.Status != http.StatusOK {
		t.Fatalf("results: %d\n%s", done.Status, done.Body)
	}
	for _, want := range []string{"Learning System A", "Library B", "Portal C", "Logged out", "ログアウトしました"} {
		if !strings.Contains(done.Body, want) {
			t.Errorf("the results page lacks %q:\n%s", want, done.Body)
		}
	}
	if strings.Contains(done.Body, `class="error"`) {
		t.Errorf("a complete logout shows a warning:\n%s", done.Body)
	}
	if n := len(e.audited("logout_propagated")); n != 3 {
		t.Errorf("%d logout_propagated events, want 3", n)
	}
	s.signedOutAt(t, s.spA)
	s.signedOutAt(t, s.spB)
}

// TestLogoutWithoutAnswersIsPartial: an SP that never answers and a
// back-channel endpoint that keeps failing are reported on the results
// page, retried (the back channel) and audited, and the SP that asked gets
// PartialLogout.
func TestLogoutWithoutAnswersIsPartial(t *testing.T) {
	s := signedInEverywhere(t, true, func(_ *env, cfg *config.Config) {
		cfg.Logout.Backchannel = config.BackchannelLogout{Timeout: time.Second, Attempts: 3, Backoff: 20 * time.Millisecond}
	})
	e, b := s.e, s.b
	doc, _ := s.spA.BuildLogoutRequestDocument(s.infoA.NameID, s.infoA.SessionIndex)
	raw, _ := doc.WriteToBytes()
	walk := b.Follow(b.Post(samlprovider.PathSLO, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}}))
	if !strings.Contains(walk.Body, "data-logout-walk") {
		t.Fatalf("no logout page: %d\n%s", walk.Status, walk.Body)
	}
	// B's frame is never loaded: B never answers.
	e.oidc.WaitForLogouts()
	if n := len(s.rp.received()); n != 3 {
		t.Errorf("the failing back-channel endpoint got %d attempts, want 3", n)
	}
	u, _ := url.Parse(walk.URL)
	done := b.Follow(b.Get("/logout/done?id=" + u.Query().Get("id")))
	for _, want := range []string{"No answer", "Could not be logged out", `class="error"`, "Return to the service"} {
		if !strings.Contains(done.Body, want) {
			t.Errorf("the results page lacks %q:\n%s", want, done.Body)
		}
	}
	failed := e.audited("logout_propagation_failed")
	if len(failed) != 2 {
		t.Fatalf("%d logout_propagation_failed events, want 2: %+v", len(failed), failed)
	}
	results := map[string]string{}
	for _, ev := range failed {
		results[ev.Detail["service"]] = ev.Detail["result"]
	}
	if results["portal"] != "failed" || results[s.siteB.EntityID] != "no_answer" {
		t.Errorf("audited results %v", results)
	}
	answer := b.expectPost(b.Follow(b.Get(finishLink(t, done.Body))))
	decoded, _ := base64.StdEncoding.DecodeString(answer.response)
	if !strings.Contains(string(decoded), "status:PartialLogout") {
		t.Errorf("A's LogoutResponse is not PartialLogout:\n%s", decoded)
	}
	if _, err := s.spA.ValidateEncodedLogoutResponsePOST(answer.response); err != nil {
		t.Errorf("A refused the LogoutResponse: %v", err)
	}
}

func finishLink(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`<a class="button" href="(/saml/slo/finish[^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no link back to the service:\n%s", body)
	}
	return html.UnescapeString(m[1])
}
