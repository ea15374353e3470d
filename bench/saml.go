package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"
)

// The service provider the SAML scenario logs in to. Its ACS is never
// contacted: the bench takes the response from the IdP's POST form.
const (
	spEntityID = "https://sp.bench.example/sp"
	spACS      = "http://127.0.0.1:9/saml/acs"
)

// keyPair is an RSA key with a self-signed certificate.
type keyPair struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newKeyPair(name string) (keyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return keyPair{}, err
	}
	cert, err := x509.ParseCertificate(der)
	return keyPair{key: key, cert: cert}, err
}

func (k keyPair) write(dir, name string) (keyFile, certFile string, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		return "", "", err
	}
	keyFile, certFile = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".crt")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	err = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.cert.Raw}), 0o600)
	return keyFile, certFile, err
}

// samlKeys are the IdP's signing key and the SP's key, made once per run.
type samlKeys struct {
	idp, sp keyPair
}

func newSAMLKeys() (*samlKeys, error) {
	idp, err := newKeyPair("idp-bench signing")
	if err != nil {
		return nil, err
	}
	sp, err := newKeyPair("idp-bench SP")
	if err != nil {
		return nil, err
	}
	return &samlKeys{idp: idp, sp: sp}, nil
}

// spMetadata is the SP's metadata: a signing key, no encryption key (so
// assertions are signed, not encrypted), one HTTP-POST ACS.
func (k *samlKeys) spMetadata() string {
	return `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="` + spEntityID + `">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAssertionsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` +
		base64.StdEncoding.EncodeToString(k.sp.cert.Raw) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="` + spACS + `" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
`
}

// samlSP is the relying SAML service provider: an independent library
// (gosaml2) that builds AuthnRequests and checks each response's
// signature, issuer, audience and validity against the certificate the
// IdP publishes in its metadata.
type samlSP struct {
	sp *saml2.SAMLServiceProvider
}

var certRe = regexp.MustCompile(`<(?:ds:)?X509Certificate[^>]*>([^<]+)</`)

// errNoSAML means the IdP under test serves no SAML metadata.
var errNoSAML = errors.New("the IdP has no SAML provider (no metadata)")

func newSAMLSP(base string, keys *samlKeys, client *http.Client) (*samlSP, error) {
	resp, err := client.Get(base + "/saml/metadata")
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, errNoSAML
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /saml/metadata: %s", resp.Status)
	}
	entity := regexp.MustCompile(`entityID="([^"]+)"`).FindSubmatch(body)
	if entity == nil {
		return nil, errors.New("no entityID in the IdP's metadata")
	}
	var certs []*x509.Certificate
	for _, m := range certRe.FindAllSubmatch(body, -1) {
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(m[1])), ""))
		if err != nil {
			return nil, err
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if !slices.ContainsFunc(certs, func(c *x509.Certificate) bool { return c.Equal(keys.idp.cert) }) {
		return nil, errors.New("the IdP's metadata does not publish the configured signing certificate")
	}
	sp := &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      base + "/saml/sso",
		IdentityProviderIssuer:      string(entity[1]),
		ServiceProviderIssuer:       spEntityID,
		AssertionConsumerServiceURL: spACS,
		AudienceURI:                 spEntityID,
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: certs},
		SPKeyStore:                  dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{keys.sp.cert.Raw}, PrivateKey: keys.sp.key}),
	}
	return &samlSP{sp: sp}, nil
}

// authURL is a new AuthnRequest in the HTTP-Redirect binding.
func (s *samlSP) authURL() (string, error) { return s.sp.BuildAuthURL("") }

var formActionRe = regexp.MustCompile(`<form method="post" action="([^"]*)" data-autosubmit>`)

// consume checks the IdP's HTTP-POST form (p) for u: the form goes to
// the ACS, and the response verifies and names u's address.
func (s *samlSP) consume(p page, u *vuser) error {
	m := formActionRe.FindStringSubmatch(p.body)
	response := p.hidden()["SAMLResponse"]
	if m == nil || response == "" {
		return unexpected("the SAML POST form", p)
	}
	if action := html.UnescapeString(m[1]); action != spACS {
		return fmt.Errorf("SAML response posted to %q, not the ACS", action)
	}
	info, err := s.sp.RetrieveAssertionInfo(response)
	if err != nil {
		return fmt.Errorf("SAML response: %w", err)
	}
	if w := info.WarningInfo; w != nil && (w.InvalidTime || w.NotInAudience) {
		return fmt.Errorf("SAML assertion: invalid time %v, not in audience %v", w.InvalidTime, w.NotInAudience)
	}
	if info.NameID == "" {
		return errors.New("SAML assertion without NameID")
	}
	for _, a := range info.Values {
		for _, v := range a.Values {
			if v.Value == u.account.Mail {
				return nil
			}
		}
	}
	return fmt.Errorf("SAML assertion does not carry %s's address", u.account.ID)
}
