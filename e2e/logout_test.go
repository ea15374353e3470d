package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
)

// spSLOMetadata is spMetadata with a front-channel SLO endpoint.
const spSLOMetadata = `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="%[1]s">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAssertionsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%[2]s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="%[4]s"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="%[3]s" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
`

// sloSP is a test SP (gosaml2) that also takes the IdP's LogoutRequests at
// /slo: it checks the request and answers with a signed LogoutResponse by
// its own auto-posting page (gosaml2's), in the IdP's frame.
type sloSP struct {
	*testSP
	entityID  string
	key       tlsKey
	mu        sync.Mutex
	loggedOut []string // NameIDs of validated LogoutRequests
}

func newSLOSP(t *testing.T) (*sloSP, []byte) {
	sp, key := newTestSP(t)
	s := &sloSP{testSP: sp, entityID: sp.srv.URL + "/metadata"}
	mux := sp.srv.Config.Handler.(*http.ServeMux)
	mux.HandleFunc("POST /slo", func(w http.ResponseWriter, r *http.Request) {
		req, err := s.sp.ValidateEncodedLogoutRequestPOST(r.PostFormValue("SAMLRequest"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.loggedOut = append(s.loggedOut, req.NameID.Value)
		s.mu.Unlock()
		doc, err := s.sp.BuildLogoutResponseDocument(saml2.StatusCodeSuccess, req.ID)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		body, err := s.sp.BuildLogoutResponseBodyPostFromDocument("", doc)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(body)
	})
	md := fmt.Sprintf(spSLOMetadata, s.entityID, base64.StdEncoding.EncodeToString(key.cert.Raw), sp.srv.URL+"/acs", sp.srv.URL+"/slo")
	s.key = key
	return s, []byte(md)
}

func (s *sloSP) logouts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.loggedOut...)
}

// TestMenuLogoutWalksTheServices: after signing in to two SAML SPs, the
// menu's Logout shows the logout page, whose static script follows the
// SPs' answers to the LogoutRequests sent in its frames and moves on to
// the results, which list both as logged out. No inline code runs on the
// IdP's pages (the CSP would report it on the console).
func TestMenuLogoutWalksTheServices(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	spA, mdA := newSLOSP(t)
	spB, mdB := newSLOSP(t)
	dir := t.TempDir()
	fileA, fileB := filepath.Join(dir, "a.xml"), filepath.Join(dir, "b.xml")
	for f, md := range map[string][]byte{fileA: mdA, fileB: mdB} {
		if err := os.WriteFile(f, md, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := testenv.New(t, func(c *config.Config, l *ldapstore.Config) {
		c.SAML.Enabled = true
		c.SAML.Scope = "campus.example"
		c.SAML.Signing = config.SAMLSigning{Generate: true}
		c.SAML.ServiceProviders = []config.SAMLServiceProvider{
			{EntityID: spA.entityID, Name: "Learning System", MetadataFile: fileA, Attributes: []string{"mail"}},
			{EntityID: spB.entityID, Name: "Library", MetadataFile: fileB, Attributes: []string{"mail"}},
		}
		l.Attributes.Extra = append(l.Attributes.Extra, c.SAML.DirectoryAttributes()...)
	})
	e.Clock.Set(time.Now())
	prov, err := samlprovider.New(t.Context(), e.App, samlprovider.Options{Config: e.Config, Store: e.DB, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	certs := metadataCerts(t, e.URL(samlprovider.PathMetadata))
	for _, s := range []*sloSP{spA, spB} {
		s.sp = &saml2.SAMLServiceProvider{
			IdentityProviderSSOURL:      e.URL(samlprovider.PathSSO),
			IdentityProviderSLOURL:      e.URL(samlprovider.PathSLO),
			IdentityProviderIssuer:      prov.EntityID(),
			ServiceProviderIssuer:       s.entityID,
			AssertionConsumerServiceURL: s.srv.URL + "/acs",
			ServiceProviderSLOURL:       s.srv.URL + "/slo",
			AudienceURI:                 s.entityID,
			IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: certs},
			SPKeyStore:                  dsig.TLSCertKeyStore{Certificate: [][]byte{s.key.cert.Raw}, PrivateKey: s.key.key},
		}
		if err := s.sp.SetSPKeyStore(&saml2.KeyStore{Signer: s.key.key, Cert: s.key.cert.Raw}); err != nil {
			t.Fatal(err)
		}
	}

	tb := newTab(t, e)
	tb.navigate(chromedp.Navigate(spA.srv.URL + "/start"))
	tb.submitLogin(testldap.Alice)
	tb.waitForURL(spA.srv.URL + "/acs")
	tb.navigate(chromedp.Navigate(spB.srv.URL + "/start"))
	tb.waitForURL(spB.srv.URL + "/acs")
	if got := eval[string](tb, `document.body.innerText`); !strings.HasPrefix(got, "valid mail=") {
		t.Fatalf("single sign-on to the second SP: %s", got)
	}

	tb.open("/user/")
	tb.openMenu()
	tb.clickText(menuLogout)
	// logout.js leaves the page once both SPs answered into their frames.
	tb.waitForURL(e.URL("/logout/done"))
	tb.mustSee(loggedOut, "Learning System", "Library", "Logged out", "ログアウトしました")
	if strings.Contains(tb.text(), "No answer") {
		t.Errorf("an SP's answer was not followed:\n%s", tb.text())
	}
	tb.page("logout results", http.StatusOK)
	for _, s := range []*sloSP{spA, spB} {
		if n := len(s.logouts()); n != 1 {
			t.Errorf("SP %s validated %d LogoutRequests, want 1", s.entityID, n)
		}
	}
}
