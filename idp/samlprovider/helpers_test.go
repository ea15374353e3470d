package samlprovider_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/consent"
	"github.com/campusidp/campusidp/idp/oidcprovider"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mail"
	"github.com/campusidp/campusidp/store"
)

// keyPair is an RSA key with a self-signed certificate.
type keyPair struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func (k keyPair) keyPEM() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(k.key)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func (k keyPair) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.cert.Raw})
}

func (k keyPair) CertB64() string { return base64.StdEncoding.EncodeToString(k.cert.Raw) }

// Keys are costly to make under the race detector; tests share a few.
var (
	keysOnce sync.Once
	testKeys []keyPair
)

const (
	keyIdP = iota
	keyIdPNext
	keySP
	keySPOther
	keyCount
)

func testKey(t testing.TB, i int) keyPair {
	t.Helper()
	keysOnce.Do(func() {
		for n := range keyCount {
			key, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(int64(n + 1)),
				Subject:      pkix.Name{CommonName: fmt.Sprintf("test key %d", n)},
				NotBefore:    time.Now().Add(-time.Hour),
				NotAfter:     time.Now().Add(24 * time.Hour),
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			if err != nil {
				panic(err)
			}
			cert, _ := x509.ParseCertificate(der)
			testKeys = append(testKeys, keyPair{key: key, cert: cert})
		}
	})
	return testKeys[i]
}

// spSite describes a test SP: its identity, endpoints and keys.
type spSite struct {
	EntityID  string
	ACS       []string // HTTP-POST ACS locations; the first is the default
	SLO       string   // HTTP-POST SLO location, "" for none
	SignKey   keyPair
	EncKey    *keyPair // nil: no encryption key in the metadata
	SignsReqs bool     // AuthnRequestsSigned="true"
	// ExtraACS is raw XML added to the SPSSODescriptor (refusal tests).
	ExtraACS string
}

var spMetadataTmpl = template.Must(template.New("md").Parse(`<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{{.EntityID}}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"{{if .SignsReqs}} AuthnRequestsSigned="true"{{end}} WantAssertionsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{{.SignKey.CertB64}}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    {{with .EncKey}}<md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{{.CertB64}}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>
    </md:KeyDescriptor>{{end}}
    {{with .SLO}}<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{{.}}"/>{{end}}
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    {{range $i, $acs := .ACS}}<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{{$acs}}" index="{{$i}}"{{if eq $i 0}} isDefault="true"{{end}}/>
    {{end}}{{.ExtraACS}}
  </md:SPSSODescriptor>
</md:EntityDescriptor>
`))

func (s spSite) metadata(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := spMetadataTmpl.Execute(&buf, s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Default test SPs.
func sp1(t testing.TB) spSite {
	enc := testKey(t, keySP)
	return spSite{
		EntityID: "https://sp1.campus.example/shibboleth",
		ACS:      []string{"https://sp1.campus.example/Shibboleth.sso/SAML2/POST", "https://sp1.campus.example/acs2"},
		SLO:      "https://sp1.campus.example/Shibboleth.sso/SLO/POST",
		SignKey:  testKey(t, keySP),
		EncKey:   &enc,
	}
}

func sp2(t testing.TB) spSite {
	return spSite{
		EntityID:  "https://sp2.campus.example/sp",
		ACS:       []string{"https://sp2.campus.example/saml/acs"},
		SignKey:   testKey(t, keySPOther),
		SignsReqs: true,
	}
}

type env struct {
	t     *testing.T
	cfg   *config.Config
	ldap  *testldap.Server
	smtp  *testsmtp.Server
	db    *store.DB
	app   *idp.App
	prov  *samlprovider.Provider
	srv   *httptest.Server
	logs  *testenv.SyncBuffer
	dir   string
	sites map[string]spSite
	// withConsent mounts the consent step (idp/consent).
	withConsent bool
	// oidc is the OpenID Connect provider on the same app (withOIDC).
	oidc     *oidcprovider.Provider
	withOIDC bool
}

type envOption func(*env, *config.Config)

// withSP registers a site with its metadata in a file and the given
// settings.
func withSP(site spSite, c config.SAMLServiceProvider) envOption {
	return func(e *env, cfg *config.Config) {
		file := filepath.Join(e.dir, fmt.Sprintf("sp%d.xml", len(cfg.SAML.ServiceProviders)))
		if err := os.WriteFile(file, site.metadata(e.t), 0o600); err != nil {
			e.t.Fatal(err)
		}
		c.EntityID = site.EntityID
		c.MetadataFile = file
		cfg.SAML.ServiceProviders = append(cfg.SAML.ServiceProviders, c)
		e.sites[site.EntityID] = site
	}
}

// withSigningKeys makes the IdP sign with key and publish extra too.
func withSigningKeys(key keyPair, extra ...keyPair) envOption {
	return func(e *env, cfg *config.Config) {
		cfg.SAML.Signing = config.SAMLSigning{
			KeyFile:  e.writeFile("idp.key", key.keyPEM()),
			CertFile: e.writeFile("idp.crt", key.certPEM()),
		}
		for i, k := range extra {
			cfg.SAML.Signing.ExtraCertFiles = append(cfg.SAML.Signing.ExtraCertFiles, e.writeFile(fmt.Sprintf("extra%d.crt", i), k.certPEM()))
		}
	}
}

func optionalMFA(_ *env, cfg *config.Config) { cfg.MFA.Enrollment = config.EnrollmentOptional }

func (e *env) writeFile(name string, data []byte) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// standardSPs are the two SPs most tests use: sp1 (persistent NameID,
// encrypted assertions, SLO) and sp2 (signs its requests, transient).
func standardSPs(t testing.TB) []envOption {
	return []envOption{
		withSP(sp1(t), config.SAMLServiceProvider{
			Name:       "Learning System",
			Attributes: []string{"eduPersonPrincipalName", "eduPersonScopedAffiliation", "eduPersonAffiliation", "mail", "displayName", "jaDisplayName", "jasn", "jaGivenName", "jao", "givenName", "sn"},
		}),
		withSP(sp2(t), config.SAMLServiceProvider{
			Attributes:   []string{"mail"},
			NameIDFormat: config.NameIDTransient,
		}),
	}
}

// newEnv starts slapd, SMTP, the store, the app and the SAML provider
// behind a loopback HTTP server. Enrollment of a second factor is required
// unless optionalMFA is given.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvWithLDAP(t, testldap.Start(t), opts...)
}

func newEnvWithLDAP(t *testing.T, ls *testldap.Server, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, ldap: ls, dir: t.TempDir(), sites: map[string]spSite{}, logs: &testenv.SyncBuffer{}}
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	base := "http://" + srv.Listener.Addr().String()

	cfg := config.Default()
	cfg.Server.PublicURL = base
	cfg.Security.SecretKey = config.SecretValue(strings.Repeat("k", 32))
	cfg.Mail.From = "ninsho-qa@campus.example"
	cfg.MFA.Enrollment = config.EnrollmentRequired
	// Only for Validate: the directory and mail are wired below.
	cfg.LDAP.URLs = []string{"ldap://127.0.0.1:389"}
	cfg.LDAP.UserBaseDN = testldap.PeopleDN
	cfg.Mail.Transport = config.TransportLog
	cfg.MFA.Email.PlaceholderAddress = "id00000000@mail2.adm.example.ac.jp"
	cfg.SAML.Enabled = true
	cfg.SAML.Scope = "campus.example"
	// The fixture directory has no eduPerson schema: affiliation comes
	// from employeeType.
	for i, a := range cfg.SAML.Attributes {
		if a.LDAP == "eduPersonAffiliation" {
			cfg.SAML.Attributes[i].LDAP = "employeeType"
		}
	}
	e.cfg = &cfg
	withSigningKeys(testKey(t, keyIdP))(e, &cfg)
	for _, o := range opts {
		o(e, &cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", strings.Join(config.Describe(err), "\n"))
	}

	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lcfg := ls.Config()
	lcfg.Attributes.Extra = append(lcfg.Attributes.Extra, cfg.SAML.DirectoryAttributes()...)
	dir, err := ldapstore.New(lcfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dir.Close() })
	db, err := store.OpenSQLite(ctx, filepath.Join(e.dir, "idp.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e.db = db
	e.smtp = testsmtp.Start(t)
	sender, err := mail.NewSMTP(mail.SMTPConfig{
		Host: e.smtp.Host(), Port: e.smtp.Port(), TLS: "none", Timeout: 5 * time.Second, From: cfg.Mail.From,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	mailer := idp.MailerFunc(func(ctx context.Context, m idp.Mail) error {
		return sender.Send(ctx, mail.Message{To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
	})
	e.app, err = idp.New(idp.Options{Config: &cfg, Directory: dir, Store: db, Sessions: db.SessionStore(),
		Mailer: mailer, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if e.withConsent {
		if _, err := consent.Mount(e.app, logger); err != nil {
			t.Fatal(err)
		}
	}
	e.prov, err = samlprovider.New(ctx, e.app, samlprovider.Options{Config: &cfg, Store: db, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if e.withOIDC {
		e.oidc, err = oidcprovider.New(ctx, oidcprovider.Options{App: e.app, Config: &cfg, Store: db, Directory: dir, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		e.oidc.Mount(e.app)
	}
	srv.Config.Handler = e.app.Handler()
	srv.Start()
	e.srv = srv
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("idp log:\n%s", testenv.LastLines(e.logs.String(), 60))
		}
	})
	return e
}

// serviceProvider is the independent SP (gosaml2) for site, trusting the
// certificates of the IdP's published metadata.
func (e *env) serviceProvider(site spSite) *saml2.SAMLServiceProvider {
	e.t.Helper()
	sp := &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      e.srv.URL + samlprovider.PathSSO,
		IdentityProviderSLOURL:      e.srv.URL + samlprovider.PathSLO,
		IdentityProviderIssuer:      e.prov.EntityID(),
		ServiceProviderIssuer:       site.EntityID,
		AssertionConsumerServiceURL: site.ACS[0],
		ServiceProviderSLOURL:       site.SLO,
		AudienceURI:                 site.EntityID,
		SignAuthnRequests:           site.SignsReqs,
		SignAuthnRequestsAlgorithm:  dsig.RSASHA256SignatureMethod,
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: e.metadataCerts()},
	}
	if site.EncKey != nil && site.EncKey.key != site.SignKey.key {
		e.t.Fatal("test SPs use one key for signing and encryption")
	}
	if err := sp.SetSPKeyStore(&saml2.KeyStore{Signer: site.SignKey.key, Cert: site.SignKey.cert.Raw}); err != nil {
		e.t.Fatal(err)
	}
	// gosaml2 decrypts with the older key store field.
	sp.SPKeyStore = dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{site.SignKey.cert.Raw}, PrivateKey: site.SignKey.key})
	return sp
}

var certRe = regexp.MustCompile(`<(?:ds:)?X509Certificate[^>]*>([^<]+)</`)

// metadataCerts reads the signing certificates from the IdP's metadata,
// as an SP configured from the metadata URL would.
func (e *env) metadataCerts() []*x509.Certificate {
	e.t.Helper()
	resp, err := http.Get(e.srv.URL + samlprovider.PathMetadata)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var certs []*x509.Certificate
	for _, m := range certRe.FindAllStringSubmatch(string(body), -1) {
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(m[1]), ""))
		if err != nil {
			e.t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			e.t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		e.t.Fatalf("no certificate in the metadata:\n%s", body)
	}
	return certs
}

// browser is the shared test browser with this package's login steps.
type browser struct {
	*testenv.Browser
	t   *testing.T
	env *env
}

func (e *env) browser() *browser {
	return &browser{Browser: testenv.NewBrowser(e.t, e.srv.URL), t: e.t, env: e}
}

type page = testenv.Page

var (
	buttonRe = regexp.MustCompile(`<a class="button" href="([^"]+)"`)
	actionRe = regexp.MustCompile(`<form method="post" action="([^"]*)" data-autosubmit>`)
)

func isLoginForm(p page) bool { return strings.Contains(p.Body, `name="password"`) }

// samlPost is the auto-submitting form the IdP answers an SP with.
type samlPost struct {
	action     string
	response   string // base64 as posted
	relayState string
	page       page
}

func (b *browser) expectPost(p page) samlPost {
	b.t.Helper()
	m := actionRe.FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || m == nil || !strings.Contains(p.Body, `name="SAMLResponse"`) {
		b.t.Fatalf("expected the SAML POST form, got %d (%s):\n%s", p.Status, p.URL, p.Body)
	}
	relay, _ := p.HiddenOK("RelayState")
	return samlPost{action: html.UnescapeString(m[1]), response: p.Hidden(b.t, "SAMLResponse"), relayState: relay, page: p}
}

// submitLogin posts the login form on p.
func (b *browser) submitLogin(p page, u testldap.User) page {
	b.t.Helper()
	if !isLoginForm(p) {
		b.t.Fatalf("expected the login form, got %d (%s):\n%s", p.Status, p.URL, p.Body)
	}
	return b.Post("/login", url.Values{
		"csrf_token": {p.Hidden(b.t, "csrf_token")},
		"tx":         {p.Hidden(b.t, "tx")},
		"username":   {u.ID},
		"password":   {u.Password},
	})
}

const otpSubject = testenv.OTPSubject

// codeFor waits for the newest one-time password mailed to addr.
func (e *env) codeFor(addr string) string {
	e.t.Helper()
	return testenv.CodeIn(e.t, testenv.NewestMail(e.t, e.smtp, addr, otpSubject))
}

// enrollAndContinue registers addr as the factor on the settings page p
// (reached during a login) and follows "Continue signing in".
func (b *browser) enrollAndContinue(p page, addr string) page {
	b.t.Helper()
	if !strings.Contains(p.Body, "One-Time Password Settings") {
		b.t.Fatalf("expected the enrollment page, got %d (%s):\n%s", p.Status, p.URL, p.Body)
	}
	tx, _ := p.HiddenOK("tx")
	p = b.Follow(b.Post("/user/otp/email/send", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")}, "tx": {tx}, "address": {addr}}))
	code := b.env.codeFor(addr)
	p = b.Follow(b.Post("/user/otp/email/confirm", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")}, "tx": {tx}, "code": {code}}))
	m := buttonRe.FindStringSubmatch(p.Body)
	if m == nil {
		b.t.Fatalf("no way on after enrolling (%d):\n%s", p.Status, p.Body)
	}
	return b.Follow(b.Get(html.UnescapeString(m[1])))
}

// mfaCode types the mailed code on the MFA page p.
func (b *browser) mfaCode(p page, addr string) page {
	b.t.Helper()
	if !strings.Contains(p.Body, "Multi-Factor Authentication") {
		b.t.Fatalf("expected the MFA page, got %d (%s):\n%s", p.Status, p.URL, p.Body)
	}
	code := b.env.codeFor(addr)
	return b.Follow(b.Post("/mfa/verify", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")}, "tx": {p.Hidden(b.t, "tx")}, "code": {code}}))
}

// authnRequest builds an AuthnRequest of sp and returns it with its ID.
func authnRequest(t *testing.T, sp *saml2.SAMLServiceProvider) (string, []byte) {
	t.Helper()
	doc, err := sp.BuildAuthRequestDocumentNoSig()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return doc.Root().SelectAttrValue("ID", ""), raw
}

// redirectURL builds the HTTP-Redirect URL of an AuthnRequest the way the
// SP does (signed when the SP signs).
func redirectURL(t *testing.T, sp *saml2.SAMLServiceProvider, relayState string) (id, target string) {
	t.Helper()
	doc, err := sp.BuildAuthRequestDocumentNoSig()
	if err != nil {
		t.Fatal(err)
	}
	target, err = sp.BuildAuthURLRedirect(relayState, doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc.Root().SelectAttrValue("ID", ""), target
}

// rawRedirectURL encodes arbitrary XML for the HTTP-Redirect binding,
// unsigned.
func (e *env) rawRedirectURL(xmlBytes []byte, relayState string) string {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	_, _ = fw.Write(xmlBytes)
	_ = fw.Close()
	q := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(buf.Bytes())}}
	if relayState != "" {
		q.Set("RelayState", relayState)
	}
	return e.srv.URL + samlprovider.PathSSO + "?" + q.Encode()
}

// audited reports whether an audit event of the type was written.
func (e *env) audited(typ string) []store.AuditEvent {
	e.t.Helper()
	events, err := e.db.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		e.t.Fatal(err)
	}
	return events
}
