package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp/oidcprovider"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
)

const (
	keyTab       = "Security key / Passkey"
	mfaKeyTitle  = "Multi-Factor Authentication : Security key / Passkey"
	registerKey  = `form[action="/user/otp/keys/register"] button[type=submit]`
	mfaKeyButton = `form[action="/mfa/key"] button[type=submit]`
	// keyACR is the acr the campus gives security-key logins in this test.
	keyACR = "https://campus.example/acr/phishing-resistant"
)

// addAuthenticator plugs a virtual security key (CTAP2 over USB, with a
// PIN, touched at once) into the tab, as Chrome DevTools' WebAuthn domain
// offers for tests.
func (tb *tab) addAuthenticator() {
	tb.t.Helper()
	tb.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
				Transport: webauthn.AuthenticatorTransportUsb, HasResidentKey: true, HasUserVerification: true,
				IsUserVerified: true, AutomaticPresenceSimulation: true,
			}})
		return err
	}))
}

// A security key from registration to logins through both protocols: the
// first OIDC login must enroll a factor and registers the key on the
// "Security key / Passkey" tab; after logging out, an OIDC login and a
// SAML login each take the password and the key, and the relying parties
// learn so (amr hwk + mfa, the configured acr; the REFEDS MFA context).
func TestSecurityKeyLogin(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	rp := newTestRP(t)
	sp, spKey := newTestSP(t)
	entityID := sp.srv.URL + "/metadata"
	mdFile := filepath.Join(t.TempDir(), "sp.xml")
	md := fmt.Sprintf(spMetadata, entityID, base64.StdEncoding.EncodeToString(spKey.cert.Raw), sp.srv.URL+"/acs")
	if err := os.WriteFile(mdFile, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	e := testenv.New(t, testenv.Localhost, testenv.RequireMFA, func(c *config.Config, l *ldapstore.Config) {
		c.OIDC.Keys.Algorithm = config.OIDCAlgES256
		c.OIDC.ACR.Methods.WebAuthn = keyACR
		c.OIDC.Clients = []config.OIDCClient{{ID: rpClientID, Name: rpClientName, Secret: config.SecretValue(rpSecret),
			RedirectURIs: []string{rp.srv.URL + "/cb"}, Scopes: []string{"openid", "profile", "email"}}}
		c.SAML.Enabled = true
		c.SAML.Scope = "campus.example"
		c.SAML.Signing = config.SAMLSigning{Generate: true}
		c.SAML.ServiceProviders = []config.SAMLServiceProvider{{EntityID: entityID, Name: spName,
			MetadataFile: mdFile, Attributes: []string{"mail"}}}
		l.Attributes.Extra = append(l.Attributes.Extra, c.SAML.DirectoryAttributes()...)
	})
	if e.Keys == nil {
		t.Fatal("security keys are not mounted")
	}
	e.Clock.Set(time.Now()) // the RP and the SP check token times against the wall clock
	op, err := oidcprovider.New(t.Context(), oidcprovider.Options{Config: e.Config, App: e.App, Store: e.DB,
		Directory: e.Directory, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	op.Mount(e.App)
	rp.issuer = op.Issuer()
	idpSAML, err := samlprovider.New(t.Context(), e.App, samlprovider.Options{Config: e.Config, Store: e.DB, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sp.connect(t, e, idpSAML.EntityID(), entityID, spKey)
	u := testldap.Alice

	tb := newTab(t, e)
	tb.addAuthenticator()

	// First login from the relying party: no factor yet, so the IdP asks
	// for one; the user picks the security-key tab and registers the key.
	tb.navigate(chromedp.Navigate(rp.srv.URL + "/start"))
	tb.submitLogin(u)
	tb.mustSee(settingsTitle)
	tb.clickText(keyTab)
	tb.mustSee(keyTab, "YubiKey")
	tb.fill("key-name", "YubiKey 5C")
	tb.page("security key tab", http.StatusOK)
	tb.click(registerKey) // the script asks the (virtual) key, then posts the form
	tb.mustSee(settingsDone)
	tb.page("security key registered", http.StatusOK)
	tb.click("a.button") // "Continue signing in"
	tb.waitForURL(rp.srv.URL + "/cb")
	if got := tb.rpResult(); !strings.Contains(got, "sub="+u.ID) || !strings.Contains(got, "hwk") {
		t.Fatalf("first login: the relying party got %s", got)
	}
	tb.open("/user/otp/keys")
	tb.mustSee("YubiKey 5C", "hwk")
	tb.page("security key listed", http.StatusOK)
	tb.logout(false)

	// OIDC: password, then the key.
	tb.navigate(chromedp.Navigate(rp.srv.URL + "/start"))
	tb.submitLogin(u)
	tb.mustSee(mfaKeyTitle)
	tb.page("mfa with the security key", http.StatusOK)
	tb.click(mfaKeyButton)
	tb.waitForURL(rp.srv.URL + "/cb")
	got := tb.rpResult()
	amr := strings.Split(strings.TrimPrefix(strings.Fields(got)[1], "amr="), ",")
	if !strings.Contains(got, "sub="+u.ID) || !slices.Contains(amr, "hwk") || !slices.Contains(amr, "mfa") ||
		slices.Contains(amr, "otp") || !strings.Contains(got, "acr="+keyACR) {
		t.Fatalf("OIDC login with the key: the relying party got %s", got)
	}
	tb.open("/user/")
	tb.logout(false)

	// SAML: password, then the key; the assertion states the REFEDS MFA
	// context.
	tb.navigate(chromedp.Navigate(sp.srv.URL + "/start"))
	tb.submitLogin(u)
	tb.mustSee(mfaKeyTitle)
	tb.click(mfaKeyButton)
	tb.waitForURL(sp.srv.URL + "/acs")
	got = eval[string](tb, `(document.getElementById('sp-result') || document.getElementById('sp-error') || document.body).innerText`)
	if !strings.HasPrefix(got, "valid mail="+u.Mail) || !strings.Contains(got, samlprovider.ClassMFA) {
		t.Fatalf("SAML login with the key: the SP got %s", got)
	}
}

// A browser without WebAuthn sees the bilingual explanation instead of a
// button that does nothing.
func TestSecurityKeyUnsupportedBrowser(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t, testenv.Localhost, testenv.RequireMFA)
	tb := newTab(t, e)
	// Hide the API before any page script runs, as an old browser lacks it.
	tb.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `delete window.PublicKeyCredential;`})
		return err
	}))
	tb.open("/user/")
	tb.submitLogin(testldap.Alice)
	tb.clickText(keyTab)
	tb.mustSee("This browser does not support security keys or passkeys.")
	tb.page("browser without webauthn", http.StatusOK)
	if !eval[bool](tb, `document.querySelector('`+registerKey+`').disabled`) {
		t.Fatal("the register button stays enabled without WebAuthn")
	}
}

// A relying party that asks for the phishing-resistant acr gets a login
// with the key only: a session whose factor was a mailed code does not
// count, the MFA page offers the key alone and mails no code, and the ID
// token carries that acr.
func TestSecurityKeyRequiredByRP(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	rp := newTestRP(t)
	const phr = "https://campus.example/acr/phr"
	e := testenv.New(t, testenv.Localhost, testenv.RequireMFA, func(c *config.Config, _ *ldapstore.Config) {
		c.OIDC.Keys.Algorithm = config.OIDCAlgES256
		c.OIDC.ACR.PhishingResistant = phr
		c.OIDC.Clients = []config.OIDCClient{{ID: rpClientID, Name: rpClientName, Secret: config.SecretValue(rpSecret),
			RedirectURIs: []string{rp.srv.URL + "/cb"}, Scopes: []string{"openid", "profile", "email"}}}
	})
	e.Clock.Set(time.Now())
	op, err := oidcprovider.New(t.Context(), oidcprovider.Options{Config: e.Config, App: e.App, Store: e.DB,
		Directory: e.Directory, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	op.Mount(e.App)
	rp.issuer = op.Issuer()
	const addr = "alice.phr@example.org"

	tb := newTab(t, e)
	tb.addAuthenticator()
	tb.enroll(testldap.Alice, addr) // signed in with the mailed code
	tb.open("/user/otp/keys")
	tb.fill("key-name", "YubiKey")
	tb.click(registerKey)
	tb.mustSee(settingsDone)

	mails := e.MailCount(addr, testenv.OTPSubject)
	tb.navigate(chromedp.Navigate(rp.srv.URL + "/start?acr=" + phr))
	tb.mustSee(mfaKeyTitle, "This service requires signing in with a security key or passkey.")
	if strings.Contains(tb.text(), "Multi-Factor Authentication : Email") {
		t.Fatal("the key-only MFA page offers the mailed code")
	}
	tb.page("key required by the relying party", http.StatusOK)
	tb.click(mfaKeyButton)
	tb.waitForURL(rp.srv.URL + "/cb")
	if got := tb.rpResult(); !strings.Contains(got, "acr="+phr) || !strings.Contains(got, "hwk") {
		t.Fatalf("the relying party got %s", got)
	}
	if e.MailCount(addr, testenv.OTPSubject) != mails {
		t.Error("a code was mailed for a key-only login")
	}
}
