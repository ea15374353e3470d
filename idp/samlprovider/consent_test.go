package samlprovider_test

import (
	"context"
	"encoding/base64"
	"html"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
)

// consentSite is an SP whose metadata requests mail (required) and
// displayName (optional), plus extra requested attributes.
func consentSite(t *testing.T, extra ...string) spSite {
	acs := `<md:AttributeConsumingService index="0" isDefault="true">
      <md:ServiceName xml:lang="en">Library</md:ServiceName>
      <md:RequestedAttribute FriendlyName="mail" Name="` + oidMail + `" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="true"/>
      <md:RequestedAttribute FriendlyName="displayName" Name="` + oidDisplayName + `" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="false"/>`
	for _, oid := range extra {
		acs += `
      <md:RequestedAttribute Name="` + oid + `" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="true"/>`
	}
	acs += `
    </md:AttributeConsumingService>`
	return spSite{
		EntityID: "https://library.campus.example/sp",
		ACS:      []string{"https://library.campus.example/saml/acs"},
		SignKey:  testKey(t, keySPOther),
		ExtraACS: acs,
	}
}

func withConsentStep(e *env, _ *config.Config) { e.withConsent = true }

var consentIDRe = regexp.MustCompile(`name="id" value="([^"]+)"`)

// consentPage checks that p is the consent page and returns its id.
func (b *browser) consentPage(p page) string {
	b.t.Helper()
	m := consentIDRe.FindStringSubmatch(p.Body)
	if !strings.Contains(p.URL, "/consent") || m == nil || !strings.Contains(p.Body, `action="/consent"`) {
		b.t.Fatalf("expected the consent page, got %d (%s):\n%s", p.Status, p.URL, p.Body)
	}
	return m[1]
}

// answerConsent posts the consent form on p.
func (b *browser) answerConsent(p page, decision string, remember bool, optional ...string) page {
	b.t.Helper()
	form := url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")}, "id": {b.consentPage(p)}, "decision": {decision}}
	if remember {
		form.Set("remember", "1")
	}
	for _, o := range optional {
		form.Add("optional", o)
	}
	return b.Follow(b.Post("/consent", form))
}

// login starts a login at sp and returns the page after the password.
func (b *browser) loginAt(site spSite, u testldap.User) (string, page) {
	b.t.Helper()
	sp := b.env.serviceProvider(site)
	id, target := redirectURL(b.t, sp, "relay-1")
	p := b.Follow(b.Get(target))
	if isLoginForm(p) {
		p = b.Follow(b.submitLogin(p, u))
	}
	return id, p
}

// TestConsentReleasesOptionalAttributeOnlyWhenTicked: the consent page
// shows the SP, its terms, the required attribute with its value and the
// optional one with a checkbox; the assertion carries the optional
// attribute only when ticked. A remembered consent skips the page until
// the requested set changes or the user revokes it on /user/; every
// answer and the revocation are audited.
func TestConsentReleasesOptionalAttributeOnlyWhenTicked(t *testing.T) {
	site := consentSite(t)
	e := newEnv(t, optionalMFA, withConsentStep, withSP(site, config.SAMLServiceProvider{
		Name: "Library", Consent: config.ConsentOnce,
		TermsOfUse: config.Localized{JA: "図書館の利用規約", EN: "Library terms of use"},
	}))
	sp := e.serviceProvider(site)
	b := e.browser()
	u := testldap.Alice

	// First login: asked; optional displayName not ticked; remembered.
	id, p := b.loginAt(site, u)
	b.consentPage(p)
	for _, want := range []string{"Library", "Library terms of use", "図書館の利用規約", u.Mail, u.DisplayName,
		`name="optional" type="checkbox" value="displayName"`, `name="remember"`} {
		if !strings.Contains(p.Body, html.EscapeString(want)) && !strings.Contains(p.Body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(p.Body, `value="mail"`) {
		t.Error("the required attribute has a checkbox")
	}
	post := b.expectPost(b.answerConsent(p, "accept", true))
	info := checkResponse(t, sp, site, post, id)
	if info.Values.Get(oidMail) != u.Mail {
		t.Errorf("mail = %q, want %q", info.Values.Get(oidMail), u.Mail)
	}
	if _, ok := info.Values[oidDisplayName]; ok {
		t.Error("displayName was released without being ticked")
	}
	if ev := e.audited("consent_given"); len(ev) != 1 || ev[0].Detail["released"] != "mail" || ev[0].Detail["remember"] != "true" {
		t.Errorf("consent_given audit = %+v", ev)
	}

	// Second login (single sign-on): no page, the remembered answer.
	id, p = b.loginAt(site, u)
	post = b.expectPost(p)
	info = checkResponse(t, sp, site, post, id)
	if _, ok := info.Values[oidDisplayName]; ok || info.Values.Get(oidMail) != u.Mail {
		t.Errorf("remembered consent released %v", info.Values)
	}

	// The SP now requests one more attribute: asked again.
	site2 := consentSite(t, oidEPPN)
	if err := os.WriteFile(filepath.Join(e.dir, "sp0.xml"), site2.metadata(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.prov.Registry().Refresh(context.Background(), site.EntityID); err != nil {
		t.Fatal(err)
	}
	_, p = b.loginAt(site, u)
	b.consentPage(p)
	if !strings.Contains(p.Body, "alice@campus.example") || !strings.Contains(p.Body, "eduPersonPrincipalName") && !strings.Contains(p.Body, "ePPN") {
		t.Errorf("the new attribute is not shown:\n%s", p.Body)
	}
	// This time displayName is ticked, and the answer remembered.
	id, p = b.loginAt(site, u) // a fresh request; the open question simply expires
	post = b.expectPost(b.answerConsent(p, "accept", true, "displayName"))
	info = checkResponse(t, sp, site, post, id)
	if info.Values.Get(oidDisplayName) != u.DisplayName {
		t.Errorf("ticked displayName = %q, want %q", info.Values.Get(oidDisplayName), u.DisplayName)
	}

	// /user/ lists it; revoking it asks again at the next login.
	up := b.Get("/user/")
	if !strings.Contains(up.Body, site.EntityID) || !strings.Contains(up.Body, `action="/user/consents/revoke"`) {
		t.Fatalf("/user/ does not list the remembered consent:\n%s", up.Body)
	}
	rv := b.Post("/user/consents/revoke", url.Values{"csrf_token": {up.Hidden(t, "csrf_token")},
		"service": {site.EntityID}, "protocol": {"saml"}})
	if rv.Status != 303 {
		t.Fatalf("revoke: %d", rv.Status)
	}
	if up = b.Get("/user/"); strings.Contains(up.Body, site.EntityID) {
		t.Error("/user/ still lists the revoked consent")
	}
	if ev := e.audited("consent_revoked"); len(ev) != 1 || ev[0].Detail["service"] != site.EntityID {
		t.Errorf("consent_revoked audit = %+v", ev)
	}
	// Without the form token the revoke is refused.
	if rv := b.Post("/user/consents/revoke", url.Values{"service": {site.EntityID}, "protocol": {"saml"}}); rv.Status < 400 {
		t.Errorf("revoke without CSRF token: %d", rv.Status)
	}
	_, p = b.loginAt(site, u)
	b.consentPage(p)
}

// TestConsentDeclinedAnswersRequestDenied: declining shows a page saying
// nothing was sent, whose button posts a signed Response with
// Responder/RequestDenied and no assertion to the SP.
func TestConsentDeclinedAnswersRequestDenied(t *testing.T) {
	site := consentSite(t)
	e := newEnv(t, optionalMFA, withConsentStep, withSP(site, config.SAMLServiceProvider{Consent: config.ConsentAlways}))
	sp := e.serviceProvider(site)
	b := e.browser()
	_, p := b.loginAt(site, testldap.Alice)
	if strings.Contains(p.Body, `name="remember"`) {
		t.Error("consent: always offers to remember")
	}
	p = b.answerConsent(p, "decline", false)
	for _, want := range []string{"You declined to send your information", "情報の提供に同意しませんでした",
		`action="` + site.ACS[0] + `"`, `name="SAMLResponse"`, `name="RelayState" value="relay-1"`} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("declined page lacks %q:\n%s", want, p.Body)
		}
	}
	if strings.Contains(p.Body, "data-autosubmit") || scriptRe.MatchString(p.Body) {
		t.Error("the declined page posts by itself; the user should read it first")
	}
	raw, err := base64.StdEncoding.DecodeString(p.Hidden(t, "SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	xml := string(raw)
	if !regexp.MustCompile(`StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder">\s*<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:RequestDenied"`).MatchString(xml) &&
		!(strings.Contains(xml, "status:Responder") && strings.Contains(xml, "status:RequestDenied")) {
		t.Errorf("response status is not Responder/RequestDenied:\n%s", xml)
	}
	if strings.Contains(xml, "Assertion") {
		t.Error("a declined response carries an assertion")
	}
	if _, err := sp.RetrieveAssertionInfo(p.Hidden(t, "SAMLResponse")); err == nil {
		t.Error("the SP accepted a RequestDenied response as a login")
	}
	if ev := e.audited("consent_declined"); len(ev) != 1 || ev[0].Detail["service"] != site.EntityID {
		t.Errorf("consent_declined audit = %+v", ev)
	}
	if ev := e.audited("saml_sso"); len(ev) != 0 {
		t.Errorf("an assertion was issued after declining: %+v", ev)
	}
	// The answer is spent: the return address cannot be replayed.
	if m := regexp.MustCompile(`/saml/sso/consented\?[^"]+`).FindString(p.URL); m != "" {
		if again := b.Get(m); again.Status == 200 && strings.Contains(again.Body, "SAMLResponse") {
			t.Error("the consented address answered twice")
		}
	}
}

// TestConsentDefaults: locally configured SPs are not asked about by
// default (campus services keep working without a prompt).
func TestConsentDefaultIsNoneForOwnMetadata(t *testing.T) {
	site := consentSite(t)
	e := newEnv(t, optionalMFA, withConsentStep, withSP(site, config.SAMLServiceProvider{}))
	b := e.browser()
	_, p := b.loginAt(site, testldap.Alice)
	b.expectPost(p)
	var fed config.SAMLServiceProvider
	if got := fed.ConsentModeOrDefault(true); got != config.ConsentOnce {
		t.Errorf("federation SP default = %q, want once", got)
	}
}

// TestConsentAskedAgainWhenValuesChange: a remembered consent is the
// user's (not the browser's), and covers the values released: when the
// directory changes a released value, the next login asks again. An
// IsPassive request that would need the page answers NoPassive.
func TestConsentAskedAgainWhenValuesChange(t *testing.T) {
	site := consentSite(t)
	e := newEnv(t, optionalMFA, withConsentStep, withSP(site, config.SAMLServiceProvider{Consent: config.ConsentOnce}))
	u := testldap.Alice

	b := e.browser()
	_, p := b.loginAt(site, u)
	b.expectPost(b.answerConsent(p, "accept", true))

	// Another browser of the same user: remembered.
	b2 := e.browser()
	_, p = b2.loginAt(site, u)
	b2.expectPost(p)

	e.ldap.Modify(t, "dn: "+u.DN+"\nchangetype: modify\nreplace: mail\nmail: alice.new@campus.example\n")
	b3 := e.browser()
	_, p = b3.loginAt(site, u)
	b3.consentPage(p)
	if !strings.Contains(p.Body, "alice.new@campus.example") {
		t.Error("the consent page does not show the new value")
	}

	// IsPassive from the signed-in browser: no page, NoPassive.
	sp := e.serviceProvider(site)
	sp.IsPassive = true
	_, target := redirectURL(t, sp, "")
	post := b3.expectPost(b3.Follow(b3.Get(target)))
	raw, _ := base64.StdEncoding.DecodeString(post.response)
	if !strings.Contains(string(raw), "status:NoPassive") || strings.Contains(string(raw), "Assertion") {
		t.Errorf("IsPassive needing consent answered:\n%s", raw)
	}
}
