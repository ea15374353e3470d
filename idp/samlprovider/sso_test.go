package samlprovider_test

import (
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/internal/testldap"
)

// OIDs of attributes the tests read.
const (
	oidEPPN          = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6"
	oidScopedAffil   = "urn:oid:1.3.6.1.4.1.5923.1.1.1.9"
	oidAffiliation   = "urn:oid:1.3.6.1.4.1.5923.1.1.1.1"
	oidMail          = "urn:oid:0.9.2342.19200300.100.1.3"
	oidDisplayName   = "urn:oid:2.16.840.1.113730.3.1.241"
	oidGivenName     = "urn:oid:2.5.4.42"
	oidSN            = "urn:oid:2.5.4.4"
	oidJaDisplayName = "urn:oid:1.3.6.1.4.1.32264.1.1.3"
	oidJaSN          = "urn:oid:1.3.6.1.4.1.32264.1.1.1"
	oidJaGivenName   = "urn:oid:1.3.6.1.4.1.32264.1.1.2"
	oidJaO           = "urn:oid:1.3.6.1.4.1.32264.1.1.4"
)

// taroJapanese gives the fixture user Taro the Japanese name parts of the
// GakuNin attributes (as attribute options, the usual directory form).
func taroJapanese(t *testing.T, ls *testldap.Server) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	ls.Modify(t, "dn: "+testldap.Taro.DN+"\nchangetype: modify\n"+
		"add: givenName\ngivenName: Taro\n-\n"+
		"add: sn;lang-ja\nsn;lang-ja:: "+b64("山田")+"\n-\n"+
		"add: givenName;lang-ja\ngivenName;lang-ja:: "+b64("太郎")+"\n-\n"+
		"add: o;lang-ja\no;lang-ja:: "+b64("キャンパス大学")+"\n")
}

// checkResponse validates a response at the SP and the protocol fields
// the SP relies on; it returns what the SP learnt.
func checkResponse(t *testing.T, sp *saml2.SAMLServiceProvider, site spSite, post samlPost, requestID string) *saml2.AssertionInfo {
	t.Helper()
	if post.action != site.ACS[0] {
		t.Errorf("form posts to %q, want the ACS %q", post.action, site.ACS[0])
	}
	info, err := sp.RetrieveAssertionInfo(post.response)
	if err != nil {
		raw, _ := base64.StdEncoding.DecodeString(post.response)
		t.Fatalf("the SP refused the response: %v\n%s", err, raw)
	}
	if !info.ResponseSignatureValidated {
		t.Error("the Response signature was not validated")
	}
	if info.WarningInfo.NotInAudience || info.WarningInfo.InvalidTime {
		t.Errorf("assertion conditions: %+v", info.WarningInfo)
	}
	a := info.Assertions[0]
	scd := a.Subject.SubjectConfirmation.SubjectConfirmationData
	if scd.InResponseTo != requestID {
		t.Errorf("InResponseTo = %q, want %q", scd.InResponseTo, requestID)
	}
	if scd.Recipient != site.ACS[0] {
		t.Errorf("Recipient = %q, want %q", scd.Recipient, site.ACS[0])
	}
	until, err := time.Parse(time.RFC3339, scd.NotOnOrAfter)
	if err != nil || until.Before(time.Now()) || until.After(time.Now().Add(5*time.Minute+time.Second)) {
		t.Errorf("NotOnOrAfter = %q, want within the 5 minutes of the assertion lifetime", scd.NotOnOrAfter)
	}
	if got := a.Conditions.AudienceRestrictions; len(got) != 1 || len(got[0].Audiences) != 1 || got[0].Audiences[0].Value != site.EntityID {
		t.Errorf("audience = %+v, want only %s", got, site.EntityID)
	}
	return info
}

func classRef(info *saml2.AssertionInfo) string {
	if st := info.Assertions[0].AuthnStatement; st != nil && st.AuthnContext.AuthnContextClassRef != nil {
		return st.AuthnContext.AuthnContextClassRef.Value
	}
	return ""
}

// signedParts lists which of the Response and the (plain) Assertion carry
// a signature that verifies with cert, checked independently of the SP.
func signedParts(t *testing.T, post samlPost, cert *x509.Certificate) (response, assertion bool) {
	t.Helper()
	raw, _ := base64.StdEncoding.DecodeString(post.response)
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
	_, err := ctx.Validate(doc.Root())
	response = err == nil
	if a := doc.Root().FindElement("./Assertion"); a != nil {
		_, err := ctx.Validate(a)
		assertion = err == nil
	}
	return response, assertion
}

var scriptRe = regexp.MustCompile(`<script[^>]*>`)

// TestSSOWithEmailOTPThroughThePages is the acceptance path: an
// independent SP (gosaml2) sends a user through the real login and email
// OTP pages, validates the signed (and encrypted) response and reads the
// attributes and the REFEDS MFA context. A second SP then gets in without
// any page, from the same session.
func TestSSOWithEmailOTPThroughThePages(t *testing.T) {
	e := newEnv(t, standardSPs(t)...)
	taroJapanese(t, e.ldap)
	site := e.sites["https://sp1.campus.example/shibboleth"]
	sp := e.serviceProvider(site)
	b := e.browser()

	id, target := redirectURL(t, sp, "relay-α/1")
	p := b.Follow(b.Get(target))
	if !strings.Contains(p.Body, "Learning System") {
		t.Errorf("the login page does not name the SP:\n%s", p.Body)
	}
	p = b.Follow(b.submitLogin(p, testldap.Taro))
	p = b.enrollAndContinue(p, "taro.home@example.org")
	post := b.expectPost(p)

	// The page: no inline script, our script only, the ACS as form target.
	csp := post.page.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "form-action 'self' https://sp1.campus.example;", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	scripts := scriptRe.FindAllString(post.page.Body, -1)
	if len(scripts) != 1 || !strings.Contains(scripts[0], `src="/static/autosubmit.js"`) {
		t.Errorf("scripts on the page = %q, want only /static/autosubmit.js", scripts)
	}
	if !strings.Contains(post.page.Body, `type="submit"`) {
		t.Error("no visible Continue button")
	}
	if js := b.Get("/static/autosubmit.js"); js.Status != http.StatusOK || !strings.Contains(js.Body, "submit()") {
		t.Errorf("/static/autosubmit.js: %d", js.Status)
	}
	if post.relayState != "relay-α/1" {
		t.Errorf("RelayState = %q", post.relayState)
	}

	raw, _ := base64.StdEncoding.DecodeString(post.response)
	if !strings.Contains(string(raw), "EncryptedAssertion") || strings.Contains(string(raw), "山田") {
		t.Error("the assertion to an SP with an encryption key is not encrypted")
	}
	info := checkResponse(t, sp, site, post, id)
	if got := classRef(info); got != samlprovider.ClassMFA {
		t.Errorf("AuthnContextClassRef = %q, want REFEDS MFA", got)
	}
	if info.NameIDFormat != samlprovider.NameIDFormatPersistent || info.NameID == "" || strings.Contains(info.NameID, "taro") {
		t.Errorf("NameID = %q (%s), want an opaque persistent ID", info.NameID, info.NameIDFormat)
	}
	wantAttrs := map[string]struct{ friendly, value string }{
		oidEPPN:          {"eduPersonPrincipalName", "taro@campus.example"},
		oidScopedAffil:   {"eduPersonScopedAffiliation", "student@campus.example"},
		oidAffiliation:   {"eduPersonAffiliation", "student"},
		oidMail:          {"mail", testldap.Taro.Mail},
		oidDisplayName:   {"displayName", "Taro Yamada"},
		oidGivenName:     {"givenName", "Taro"},
		oidSN:            {"sn", "Yamada"},
		oidJaDisplayName: {"jaDisplayName", "山田 太郎"},
		oidJaSN:          {"jasn", "山田"},
		oidJaGivenName:   {"jaGivenName", "太郎"},
		oidJaO:           {"jao", "キャンパス大学"},
	}
	for oid, want := range wantAttrs {
		attr, ok := info.Values[oid]
		if !ok {
			t.Errorf("attribute %s (%s) missing", want.friendly, oid)
			continue
		}
		if attr.FriendlyName != want.friendly || info.Values.Get(oid) != want.value {
			t.Errorf("attribute %s = %s %q, want %s %q", oid, attr.FriendlyName, info.Values.Get(oid), want.friendly, want.value)
		}
	}
	if len(info.Values) != len(wantAttrs) {
		t.Errorf("released %d attributes, want %d", len(info.Values), len(wantAttrs))
	}
	if ev := e.audited("saml_sso"); len(ev) != 1 || ev[0].Subject != testldap.Taro.ID || ev[0].Detail["sp"] != site.EntityID {
		t.Errorf("audit saml_sso = %+v", ev)
	}

	// Single sign-on: the second SP gets in without a page.
	site2 := e.sites["https://sp2.campus.example/sp"]
	sp2 := e.serviceProvider(site2)
	id2, target2 := redirectURL(t, sp2, "")
	post2 := b.expectPost(b.Follow(b.Get(target2)))
	info2 := checkResponse(t, sp2, site2, post2, id2)
	if got := classRef(info2); got != samlprovider.ClassMFA {
		t.Errorf("second SP: AuthnContextClassRef = %q, want REFEDS MFA", got)
	}
	if info2.NameIDFormat != samlprovider.NameIDFormatTransient || len(info2.Values) != 1 || info2.Values.Get(oidMail) != testldap.Taro.Mail {
		t.Errorf("second SP got NameID %s and attributes %v, want transient and mail only", info2.NameIDFormat, info2.Values)
	}
	if resp, assertion := signedParts(t, post2, testKey(t, keyIdP).cert); !resp || !assertion {
		t.Errorf("signed: response %v, assertion %v; want both", resp, assertion)
	}
	if post2.relayState != "" {
		t.Errorf("RelayState %q appeared", post2.relayState)
	}

	// The same session at the first SP again: same persistent NameID,
	// MFA still stated, no page.
	id3, target3 := redirectURL(t, sp, "")
	info3 := checkResponse(t, sp, site, b.expectPost(b.Follow(b.Get(target3))), id3)
	if info3.NameID != info.NameID {
		t.Errorf("persistent NameID changed: %q then %q", info.NameID, info3.NameID)
	}
}

// TestLaterLoginAsksForTheMailedCode: an enrolled user signing in to an SP
// gets the MFA page with the mailed code, and the SP reads REFEDS MFA.
func TestLaterLoginAsksForTheMailedCode(t *testing.T) {
	e := newEnv(t, standardSPs(t)...)
	site := e.sites["https://sp1.campus.example/shibboleth"]
	sp := e.serviceProvider(site)
	const addr = "alice.home@example.org"

	first := e.browser()
	_, target := redirectURL(t, sp, "")
	p := first.Follow(first.submitLogin(first.Follow(first.Get(target)), testldap.Alice))
	first.expectPost(first.enrollAndContinue(p, addr))

	b := e.browser()
	id, target := redirectURL(t, sp, "")
	p = b.Follow(b.submitLogin(b.Follow(b.Get(target)), testldap.Alice))
	post := b.expectPost(b.mfaCode(p, addr))
	info := checkResponse(t, sp, site, post, id)
	if got := classRef(info); got != samlprovider.ClassMFA {
		t.Errorf("AuthnContextClassRef = %q, want REFEDS MFA", got)
	}
}

// TestPOSTBindingKeepsTheSession: a request posted cross-site carries no
// SameSite=Lax cookie. The IdP must not start a session on that POST (it
// would replace the user's); it parks the request and continues it with a
// GET, where the user's session is found.
func TestPOSTBindingKeepsTheSession(t *testing.T) {
	e := newEnv(t, append(standardSPs(t), optionalMFA)...)
	b := e.browser()
	site1 := e.sites["https://sp1.campus.example/shibboleth"]
	_, target := redirectURL(t, e.serviceProvider(site1), "")
	b.expectPost(b.Follow(b.submitLogin(b.Follow(b.Get(target)), testldap.Bob)))

	site2 := e.sites["https://sp2.campus.example/sp"]
	sp2 := e.serviceProvider(site2)
	doc, err := sp2.BuildAuthRequestDocument() // signed, enveloped
	if err != nil {
		t.Fatal(err)
	}
	id := doc.Root().SelectAttrValue("ID", "")
	raw, _ := doc.WriteToBytes()
	form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}, "RelayState": {"state-2"}}

	// The cross-site POST, as the browser sends it: without the cookie.
	noCookies := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noCookies.Post(e.srv.URL+samlprovider.PathSSO, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), samlprovider.PathContinue) ||
		len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("the POST answered %s to %q with cookies %q; want 303 to %s and no cookie",
			resp.Status, resp.Header.Get("Location"), resp.Header.Values("Set-Cookie"), samlprovider.PathContinue)
	}
	// The browser follows with its cookie and is signed in already.
	post := b.expectPost(b.Follow(b.Get(resp.Header.Get("Location"))))
	checkResponse(t, sp2, site2, post, id)

	// Through a browser that does send its cookie, as well.
	doc2, _ := sp2.BuildAuthRequestDocument()
	id = doc2.Root().SelectAttrValue("ID", "")
	raw, _ = doc2.WriteToBytes()
	form.Set("SAMLRequest", base64.StdEncoding.EncodeToString(raw))
	p := b.Post(samlprovider.PathSSO, form)
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, samlprovider.PathContinue) {
		t.Fatalf("POST binding answered %d %q", p.Status, p.Location)
	}
	post = b.expectPost(b.Follow(p))
	info := checkResponse(t, sp2, site2, post, id)
	if post.relayState != "state-2" {
		t.Errorf("RelayState = %q", post.relayState)
	}
	if got := classRef(info); got != samlprovider.ClassPasswordProtectedTransport {
		t.Errorf("AuthnContextClassRef = %q, want PasswordProtectedTransport for a password-only login", got)
	}
}

// TestPassiveAndForcedAuthentication: IsPassive never shows a page (it
// answers NoPassive without a session), and ForceAuthn asks for the
// password again despite a session.
func TestPassiveAndForcedAuthentication(t *testing.T) {
	e := newEnv(t, append(standardSPs(t), optionalMFA)...)
	site := e.sites["https://sp1.campus.example/shibboleth"]
	sp := e.serviceProvider(site)
	b := e.browser()

	sp.IsPassive = true
	_, target := redirectURL(t, sp, "")
	post := b.expectPost(b.Follow(b.Get(target)))
	raw, _ := base64.StdEncoding.DecodeString(post.response)
	if !strings.Contains(string(raw), "urn:oasis:names:tc:SAML:2.0:status:NoPassive") || strings.Contains(string(raw), "Assertion") {
		t.Errorf("IsPassive without a session answered:\n%s", raw)
	}
	if resp, _ := signedParts(t, post, testKey(t, keyIdP).cert); !resp {
		t.Error("the NoPassive response is not signed")
	}
	if _, err := sp.RetrieveAssertionInfo(post.response); err == nil {
		t.Error("the SP accepted a NoPassive response as a login")
	}

	sp.IsPassive = false
	_, target = redirectURL(t, sp, "")
	b.expectPost(b.Follow(b.submitLogin(b.Follow(b.Get(target)), testldap.Bob)))

	sp.IsPassive = true
	id, target := redirectURL(t, sp, "")
	checkResponse(t, sp, site, b.expectPost(b.Follow(b.Get(target))), id)

	sp.IsPassive = false
	sp.ForceAuthn = true
	id, target = redirectURL(t, sp, "")
	p := b.Follow(b.Get(target))
	if !isLoginForm(p) {
		t.Fatalf("ForceAuthn with a session did not ask for the password:\n%s", p.Body)
	}
	checkResponse(t, sp, site, b.expectPost(b.Follow(b.submitLogin(p, testldap.Bob))), id)
}

// TestRequestedContextDecidesTheFactor: a request for REFEDS MFA makes the
// login core demand the factor even where a password would do; a request
// for exactly PasswordProtectedTransport is answered with it; a context we
// cannot give is answered NoAuthnContext.
func TestRequestedContextDecidesTheFactor(t *testing.T) {
	e := newEnv(t, append(standardSPs(t), optionalMFA)...)
	site := e.sites["https://sp1.campus.example/shibboleth"]
	b := e.browser()

	sp := e.serviceProvider(site)
	id, target := redirectURL(t, sp, "")
	info := checkResponse(t, sp, site, b.expectPost(b.Follow(b.submitLogin(b.Follow(b.Get(target)), testldap.Bob))), id)
	if got := classRef(info); got != samlprovider.ClassPasswordProtectedTransport {
		t.Errorf("password-only login answered %q", got)
	}

	sp = e.serviceProvider(site)
	sp.RequestedAuthnContext = &saml2.RequestedAuthnContext{Comparison: "exact", Contexts: []string{samlprovider.ClassMFA}}
	id, target = redirectURL(t, sp, "")
	p := b.Follow(b.Get(target))
	post := b.expectPost(b.enrollAndContinue(p, "bob.home@example.org"))
	if got := classRef(checkResponse(t, sp, site, post, id)); got != samlprovider.ClassMFA {
		t.Errorf("after a request for MFA: %q", got)
	}

	sp = e.serviceProvider(site)
	sp.RequestedAuthnContext = &saml2.RequestedAuthnContext{Comparison: "exact", Contexts: []string{samlprovider.ClassPasswordProtectedTransport}}
	id, target = redirectURL(t, sp, "")
	if got := classRef(checkResponse(t, sp, site, b.expectPost(b.Follow(b.Get(target))), id)); got != samlprovider.ClassPasswordProtectedTransport {
		t.Errorf("exact PasswordProtectedTransport answered %q", got)
	}

	sp = e.serviceProvider(site)
	sp.RequestedAuthnContext = &saml2.RequestedAuthnContext{Comparison: "better", Contexts: []string{samlprovider.ClassMFA}}
	_, target = redirectURL(t, sp, "")
	raw, _ := base64.StdEncoding.DecodeString(b.expectPost(b.Follow(b.Get(target))).response)
	if !strings.Contains(string(raw), "status:NoAuthnContext") {
		t.Errorf("better than MFA answered:\n%s", raw)
	}
}

// TestRequireMFASetting: an SP registered with require_mfa gets a second
// factor even when enrollment is optional.
func TestRequireMFASetting(t *testing.T) {
	site := sp1(t)
	e := newEnv(t, optionalMFA, withSP(site, config.SAMLServiceProvider{Attributes: []string{"mail"}, RequireMFA: true}))
	sp := e.serviceProvider(site)
	b := e.browser()
	id, target := redirectURL(t, sp, "")
	p := b.Follow(b.submitLogin(b.Follow(b.Get(target)), testldap.Bob))
	post := b.expectPost(b.enrollAndContinue(p, "bob.home@example.org"))
	if got := classRef(checkResponse(t, sp, site, post, id)); got != samlprovider.ClassMFA {
		t.Errorf("require_mfa SP got %q", got)
	}
}

// TestNameIDFormats: persistent IDs are stable and differ per SP;
// transient ones differ each time; emailAddress is the mail address; a
// format the SP is not registered for is refused at its ACS.
func TestNameIDFormats(t *testing.T) {
	a, c := sp1(t), sp2(t)
	c.SignsReqs = false
	e := newEnv(t, optionalMFA,
		withSP(a, config.SAMLServiceProvider{Attributes: []string{"mail"}}),
		withSP(c, config.SAMLServiceProvider{Attributes: []string{"mail"}, NameIDFormat: config.NameIDEmail}))
	nameID := func(b *browser, site spSite, format string) (string, string) {
		t.Helper()
		sp := e.serviceProvider(site)
		sp.NameIdFormat = format
		_, target := redirectURL(t, sp, "")
		p := b.Follow(b.Get(target))
		if isLoginForm(p) {
			p = b.Follow(b.submitLogin(p, testldap.Bob))
		}
		post := b.expectPost(p)
		info, err := sp.RetrieveAssertionInfo(post.response)
		if err != nil {
			raw, _ := base64.StdEncoding.DecodeString(post.response)
			return "", string(raw)
		}
		return info.NameID, info.NameIDFormat
	}
	b1, b2 := e.browser(), e.browser()
	p1, f1 := nameID(b1, a, samlprovider.NameIDFormatPersistent)
	p2, _ := nameID(b2, a, "")
	if f1 != samlprovider.NameIDFormatPersistent || p1 != p2 || len(p1) < 40 {
		t.Errorf("persistent NameIDs %q and %q (%s), want one stable opaque value", p1, p2, f1)
	}
	t1, tf := nameID(b1, a, samlprovider.NameIDFormatTransient)
	t2, _ := nameID(b1, a, samlprovider.NameIDFormatTransient)
	if tf != samlprovider.NameIDFormatTransient || t1 == t2 || t1 == p1 {
		t.Errorf("transient NameIDs %q, %q (%s): want fresh values", t1, t2, tf)
	}
	m, mf := nameID(b1, c, "")
	if mf != samlprovider.NameIDFormatEmail || m != testldap.Bob.Mail {
		t.Errorf("email NameID %q (%s)", m, mf)
	}
	if _, raw := nameID(b1, c, samlprovider.NameIDFormatPersistent); !strings.Contains(raw, "status:InvalidNameIDPolicy") {
		t.Errorf("a persistent NameID for an email SP was not refused:\n%s", raw)
	}
}

// TestSingleLogout: an SP-initiated, signed LogoutRequest ends the IdP
// session and is answered with a signed LogoutResponse; the next
// AuthnRequest shows the login page.
func TestSingleLogout(t *testing.T) {
	for _, binding := range []string{"redirect", "post"} {
		t.Run(binding, func(t *testing.T) {
			e := newEnv(t, append(standardSPs(t), optionalMFA)...)
			site := e.sites["https://sp1.campus.example/shibboleth"]
			sp := e.serviceProvider(site)
			// The LogoutRequest then names the user by the persistent
			// NameID, which the IdP checks against the session's user.
			sp.NameIdFormat = samlprovider.NameIDFormatPersistent
			b := e.browser()
			id, target := redirectURL(t, sp, "")
			info := checkResponse(t, sp, site, b.expectPost(b.Follow(b.submitLogin(b.Follow(b.Get(target)), testldap.Bob))), id)

			doc, err := sp.BuildLogoutRequestDocument(info.NameID, info.SessionIndex)
			if err != nil {
				t.Fatal(err)
			}
			reqID := doc.Root().SelectAttrValue("ID", "")
			var p page
			if binding == "redirect" {
				unsigned, _ := sp.BuildLogoutRequestDocumentNoSig(info.NameID, info.SessionIndex)
				reqID = unsigned.Root().SelectAttrValue("ID", "")
				u, err := sp.BuildLogoutURLRedirect("slo-state", unsigned)
				if err != nil {
					t.Fatal(err)
				}
				p = b.Follow(b.Get(u))
			} else {
				raw, _ := doc.WriteToBytes()
				p = b.Follow(b.Post(samlprovider.PathSLO, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}, "RelayState": {"slo-state"}}))
			}
			post := b.expectPost(p)
			if post.action != site.SLO || post.relayState != "slo-state" {
				t.Errorf("LogoutResponse goes to %q with RelayState %q", post.action, post.relayState)
			}
			lr, err := sp.ValidateEncodedLogoutResponsePOST(post.response)
			if err != nil {
				t.Fatalf("the SP refused the LogoutResponse: %v", err)
			}
			if lr.InResponseTo != reqID || lr.Status.StatusCode.Value != "urn:oasis:names:tc:SAML:2.0:status:Success" {
				t.Errorf("LogoutResponse InResponseTo %q status %s", lr.InResponseTo, lr.Status.StatusCode.Value)
			}

			_, target = redirectURL(t, sp, "")
			if p := b.Follow(b.Get(target)); !isLoginForm(p) {
				t.Errorf("after SLO the next AuthnRequest did not show the login page:\n%s", p.Body)
			}
			if len(e.audited("saml_logout")) != 1 {
				t.Error("no saml_logout audit event")
			}
		})
	}
}

// TestSingleLogoutRefusals: unsigned requests are refused, and a request
// naming another user leaves the session alone.
func TestSingleLogoutRefusals(t *testing.T) {
	e := newEnv(t, append(standardSPs(t), optionalMFA)...)
	site := e.sites["https://sp1.campus.example/shibboleth"]
	sp := e.serviceProvider(site)
	sp.NameIdFormat = samlprovider.NameIDFormatPersistent
	b := e.browser()
	_, target := redirectURL(t, sp, "")
	b.expectPost(b.Follow(b.submitLogin(b.Follow(b.Get(target)), testldap.Bob)))
	stillSignedIn := func() bool {
		sp.IsPassive = true
		defer func() { sp.IsPassive = false }()
		_, target := redirectURL(t, sp, "")
		_, err := sp.RetrieveAssertionInfo(b.expectPost(b.Follow(b.Get(target))).response)
		return err == nil
	}

	unsigned, _ := sp.BuildLogoutRequestDocumentNoSig("whoever", "")
	raw, _ := unsigned.WriteToBytes()
	p := b.Follow(b.Post(samlprovider.PathSLO, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}}))
	if p.Status != http.StatusBadRequest || strings.Contains(p.Body, "SAMLResponse") {
		t.Errorf("unsigned LogoutRequest: %d\n%s", p.Status, p.Body)
	}
	if !stillSignedIn() {
		t.Fatal("an unsigned LogoutRequest ended the session")
	}

	other, _ := sp.BuildLogoutRequestDocument("not-bobs-persistent-id", "")
	raw, _ = other.WriteToBytes()
	post := b.expectPost(b.Follow(b.Post(samlprovider.PathSLO, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}})))
	decoded, _ := base64.StdEncoding.DecodeString(post.response)
	if !strings.Contains(string(decoded), "status:UnknownPrincipal") {
		t.Errorf("LogoutRequest for another user answered:\n%s", decoded)
	}
	if !stillSignedIn() {
		t.Error("a LogoutRequest for another user ended the session")
	}
}
