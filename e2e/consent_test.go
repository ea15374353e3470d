package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
)

// consentSPMetadata requests mail (required) and displayName (optional),
// and names the service in both languages (mdui:UIInfo).
const consentSPMetadata = `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:mdui="urn:oasis:names:tc:SAML:metadata:ui" entityID="%[1]s">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAssertionsSigned="true">
    <md:Extensions><mdui:UIInfo>
      <mdui:DisplayName xml:lang="ja">附属図書館 蔵書検索</mdui:DisplayName>
      <mdui:DisplayName xml:lang="en">University Library Catalogue</mdui:DisplayName>
    </mdui:UIInfo></md:Extensions>
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%[2]s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="%[3]s" index="0" isDefault="true"/>
    <md:AttributeConsumingService index="0" isDefault="true">
      <md:ServiceName xml:lang="en">Library</md:ServiceName>
      <md:RequestedAttribute FriendlyName="mail" Name="urn:oid:0.9.2342.19200300.100.1.3" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="true"/>
      <md:RequestedAttribute FriendlyName="eduPersonPrincipalName" Name="urn:oid:1.3.6.1.4.1.5923.1.1.1.6" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="true"/>
      <md:RequestedAttribute FriendlyName="displayName" Name="urn:oid:2.16.840.1.113730.3.1.241" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="false"/>
    </md:AttributeConsumingService>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
`

// TestConsentPage: a SAML SP that asks for consent. The consent page
// (service name in both languages, terms of use, required attributes with
// values, the optional one with a checkbox) is checked and photographed at
// desktop and 375 px phone width; ticking the optional attribute and
// agreeing gets the user into the SP, and /user/ then lists the
// remembered consent.
func TestConsentPage(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	sp, spKey := newTestSP(t)
	entityID := sp.srv.URL + "/metadata"
	mdFile := filepath.Join(t.TempDir(), "sp.xml")
	md := fmt.Sprintf(consentSPMetadata, entityID, base64.StdEncoding.EncodeToString(spKey.cert.Raw), sp.srv.URL+"/acs")
	if err := os.WriteFile(mdFile, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	e := testenv.New(t, func(c *config.Config, l *ldapstore.Config) {
		c.SAML.Enabled = true
		c.SAML.Scope = "campus.example"
		c.SAML.Signing = config.SAMLSigning{Generate: true}
		c.SAML.ServiceProviders = []config.SAMLServiceProvider{{EntityID: entityID, MetadataFile: mdFile,
			Consent: config.ConsentOnce,
			TermsOfUse: config.Localized{
				JA: "本サービスは、送信された情報を利用者の識別と貸出サービスの提供にのみ利用します。",
				EN: "The library uses the information only to identify you and to provide its lending services.",
			}}}
		l.Attributes.Extra = append(l.Attributes.Extra, c.SAML.DirectoryAttributes()...)
	})
	e.Clock.Set(time.Now())
	prov, err := samlprovider.New(t.Context(), e.App, samlprovider.Options{Config: e.Config, Store: e.DB, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sp.connect(t, e, prov.EntityID(), entityID, spKey)
	u := testldap.Alice

	tb := newTab(t, e)
	tb.navigate(chromedp.Navigate(sp.srv.URL + "/start"))
	tb.submitLogin(u)
	tb.mustSee("サービスへの情報提供の確認", "Information sent to the service",
		"附属図書館 蔵書検索", "University Library Catalogue", "Terms of use", "lending services",
		"Information sent (required)", "Email address", u.Mail, "User identifier (ePPN)",
		"Information you may send (optional)", "Display name", u.DisplayName,
		"Remember my choice for this service", "Agree and send", "Decline")
	tb.page("consent page", http.StatusOK)

	tb.check("consent-opt-0")
	tb.click(`button[value="accept"]`)
	tb.waitForURL(sp.srv.URL + "/acs")
	got := eval[string](tb, `(document.getElementById('sp-result') || document.getElementById('sp-error') || document.body).innerText`)
	if !strings.HasPrefix(got, "valid mail="+u.Mail) {
		t.Fatalf("the SP got: %s", got)
	}

	tb.open("/user/")
	tb.mustSee("Remembered consents", "附属図書館 蔵書検索", entityID, "displayName")
	tb.page("remembered consent on the account page", http.StatusOK)
}
