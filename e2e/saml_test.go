package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

const (
	spName  = "Learning System"
	oidMail = "urn:oid:0.9.2342.19200300.100.1.3"
)

// spMetadata is the test SP's metadata: a signing certificate and one ACS
// for the HTTP-POST binding.
const spMetadata = `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="%[1]s">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAssertionsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%[2]s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="%[3]s" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
`

var x509Re = regexp.MustCompile(`<(?:ds:)?X509Certificate[^>]*>([^<]+)</`)

// testSP is a SAML service provider built on an independent library
// (gosaml2): /start sends an AuthnRequest by redirect, /acs validates the
// signed response the IdP's page posts and shows the NameID and attributes.
type testSP struct {
	srv *httptest.Server
	sp  *saml2.SAMLServiceProvider
}

// connect points the SP at the IdP of e: its SSO endpoint, its signing
// certificates from the metadata, the SP's own key and entity ID.
func (s *testSP) connect(t *testing.T, e *testenv.Env, idpEntityID, entityID string, key tlsKey) {
	t.Helper()
	s.sp = &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      e.URL(samlprovider.PathSSO),
		IdentityProviderIssuer:      idpEntityID,
		ServiceProviderIssuer:       entityID,
		AssertionConsumerServiceURL: s.srv.URL + "/acs",
		AudienceURI:                 entityID,
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: metadataCerts(t, e.URL(samlprovider.PathMetadata))},
		SPKeyStore:                  dsig.TLSCertKeyStore{Certificate: [][]byte{key.cert.Raw}, PrivateKey: key.key},
	}
}

func newTestSP(t *testing.T) (*testSP, tlsKey) {
	key := newRSAKey(t)
	s := &testSP{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /start", func(w http.ResponseWriter, r *http.Request) {
		u, err := s.sp.BuildAuthURL("relay-" + randomString())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, u, http.StatusFound)
	})
	mux.HandleFunc("POST /acs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		const page = `<!doctype html><html lang="en"><link rel="icon" href="data:,"><title>SP</title><p id="%s">%s</p>`
		info, err := s.sp.RetrieveAssertionInfo(r.PostFormValue("SAMLResponse"))
		if err != nil || info.WarningInfo.InvalidTime || info.WarningInfo.NotInAudience {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, page, "sp-error", html.EscapeString(fmt.Sprintf("%v %+v", err, info)))
			return
		}
		var ctx []string
		for _, a := range info.Assertions {
			if a.AuthnStatement != nil && a.AuthnStatement.AuthnContext != nil && a.AuthnStatement.AuthnContext.AuthnContextClassRef != nil {
				ctx = append(ctx, a.AuthnStatement.AuthnContext.AuthnContextClassRef.Value)
			}
		}
		// gosaml2 returns no assertion whose signature did not validate.
		fmt.Fprintf(w, page, "sp-result", html.EscapeString(fmt.Sprintf("valid mail=%s context=%s relay=%s",
			info.Values.Get(oidMail), strings.Join(ctx, ","), r.PostFormValue("RelayState"))))
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s, key
}

type tlsKey struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newRSAKey(t *testing.T) tlsKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e test SP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tlsKey{key: key, cert: cert}
}

// A SAML login from a service provider: login page, mailed code, then the
// IdP's page posts the signed response to the SP by itself (its script file
// under the page's own CSP) and the SP validates it.
func TestSAMLLogin(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	sp, spKey := newTestSP(t)
	entityID := sp.srv.URL + "/metadata"
	mdFile := filepath.Join(t.TempDir(), "sp.xml")
	md := fmt.Sprintf(spMetadata, entityID, base64.StdEncoding.EncodeToString(spKey.cert.Raw), sp.srv.URL+"/acs")
	if err := os.WriteFile(mdFile, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	e := testenv.New(t, testenv.RequireMFA, func(c *config.Config, l *ldapstore.Config) {
		c.SAML.Enabled = true
		c.SAML.Scope = "campus.example"
		c.SAML.Signing = config.SAMLSigning{Generate: true}
		c.SAML.ServiceProviders = []config.SAMLServiceProvider{{EntityID: entityID, Name: spName,
			MetadataFile: mdFile, Attributes: []string{"mail"}}}
		l.Attributes.Extra = append(l.Attributes.Extra, c.SAML.DirectoryAttributes()...)
	})
	e.Clock.Set(time.Now()) // the SP checks assertion times against the wall clock
	prov, err := samlprovider.New(t.Context(), e.App, samlprovider.Options{Config: e.Config, Store: e.DB, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sp.connect(t, e, prov.EntityID(), entityID, spKey)

	const addr = "alice.saml@example.org"
	setup := newTab(t, e)
	setup.enroll(testldap.Alice, addr)

	tb := newTab(t, e)
	tb.navigate(chromedp.Navigate(sp.srv.URL + "/start"))
	tb.mustSee("You are signing in to:", spName)
	tb.page("login for the learning system", http.StatusOK)
	tb.submitLogin(testldap.Alice)
	tb.mustSee(mfaEmailTitle)
	tb.fill("mfa-code", e.CodeFrom(addr, testenv.OTPSubject))
	tb.click(mfaButton)
	// The IdP's POST page submits itself to the SP.
	tb.waitForURL(sp.srv.URL + "/acs")
	got := eval[string](tb, `(document.getElementById('sp-result') || document.getElementById('sp-error') || document.body).innerText`)
	if !strings.HasPrefix(got, "valid mail="+testldap.Alice.Mail) || !strings.Contains(got, samlprovider.ClassMFA) ||
		!strings.Contains(got, "relay=relay-") {
		t.Fatalf("the SP got: %s", got)
	}
}

// metadataCerts reads the signing certificates from the IdP's metadata, as
// an SP configured from the metadata URL does.
func metadataCerts(t *testing.T, url string) []*x509.Certificate {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var certs []*x509.Certificate
	for _, m := range x509Re.FindAllStringSubmatch(string(body), -1) {
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(m[1]), ""))
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("no certificate in the IdP metadata:\n%s", body)
	}
	return certs
}
