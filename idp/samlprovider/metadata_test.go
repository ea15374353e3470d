package samlprovider_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/internal/testldap"
)

const stableEntityID = "https://idp.campus.example/idp/shibboleth"

func withEntityID(id string) envOption {
	return func(_ *env, cfg *config.Config) { cfg.SAML.EntityID = id }
}

// TestMetadata: the published metadata has the entity ID, both
// certificates during a rollover, both SSO bindings, SLO, the NameID
// formats and the scope.
func TestMetadata(t *testing.T) {
	e := newEnv(t, optionalMFA, withEntityID(stableEntityID),
		withSigningKeys(testKey(t, keyIdP), testKey(t, keyIdPNext)))
	resp, err := http.Get(e.srv.URL + samlprovider.PathMetadata)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/samlmetadata+xml" {
		t.Errorf("Content-Type %q", ct)
	}
	var md saml.EntityDescriptor
	if err := xml.Unmarshal(body, &md); err != nil {
		t.Fatalf("metadata does not parse: %v\n%s", err, body)
	}
	if md.EntityID != stableEntityID {
		t.Errorf("entityID %q", md.EntityID)
	}
	if !md.ValidUntil.IsZero() {
		t.Errorf("validUntil %s without saml.metadata.valid_for: SPs that saved a copy would stop working", md.ValidUntil)
	}
	if len(md.IDPSSODescriptors) != 1 {
		t.Fatalf("%d IDPSSODescriptors", len(md.IDPSSODescriptors))
	}
	d := md.IDPSSODescriptors[0]
	var certs []*x509.Certificate
	for _, kd := range d.KeyDescriptors {
		if kd.Use != "signing" {
			t.Errorf("key use %q", kd.Use)
		}
		der, _ := base64.StdEncoding.DecodeString(kd.KeyInfo.X509Data.X509Certificates[0].Data)
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 || !certs[0].Equal(testKey(t, keyIdP).cert) || !certs[1].Equal(testKey(t, keyIdPNext).cert) {
		t.Errorf("published certificates: %d, want the signing one and the extra one in order", len(certs))
	}
	endpoints := map[string]string{}
	for _, ep := range d.SingleSignOnServices {
		endpoints["sso "+ep.Binding] = ep.Location
	}
	for _, ep := range d.SingleLogoutServices {
		endpoints["slo "+ep.Binding] = ep.Location
	}
	for key, want := range map[string]string{
		"sso " + saml.HTTPRedirectBinding: e.srv.URL + samlprovider.PathSSO,
		"sso " + saml.HTTPPostBinding:     e.srv.URL + samlprovider.PathSSO,
		"slo " + saml.HTTPRedirectBinding: e.srv.URL + samlprovider.PathSLO,
		"slo " + saml.HTTPPostBinding:     e.srv.URL + samlprovider.PathSLO,
	} {
		if endpoints[key] != want {
			t.Errorf("%s = %q, want %q", key, endpoints[key], want)
		}
	}
	var formats []string
	for _, f := range d.NameIDFormats {
		formats = append(formats, string(f))
	}
	if strings.Join(formats, " ") != strings.Join([]string{samlprovider.NameIDFormatPersistent, samlprovider.NameIDFormatTransient, samlprovider.NameIDFormatEmail}, " ") {
		t.Errorf("NameID formats %v", formats)
	}
	if !strings.Contains(string(body), `<shibmd:Scope xmlns:shibmd="urn:mace:shibboleth:metadata:1.0" regexp="false">campus.example</shibmd:Scope>`) {
		t.Errorf("no shibmd:Scope:\n%s", body)
	}
}

// TestKeyRollover: an SP that loaded the metadata listing both the old and
// the new certificate verifies assertions signed with either key, so the
// IdP can switch keys without a flag day. An SP that knows only the old
// certificate does not verify the new key's signature.
func TestKeyRollover(t *testing.T) {
	ls := testldap.Start(t)
	old, next := testKey(t, keyIdP), testKey(t, keyIdPNext)

	// Before the switch: signing with the old key, the next one announced.
	before := newEnvWithLDAP(t, ls, append(standardSPs(t), optionalMFA, withEntityID(stableEntityID),
		withSigningKeys(old, next))...)
	published := before.metadataCerts()
	if len(published) != 2 {
		t.Fatalf("metadata lists %d certificates, want 2", len(published))
	}
	// After the switch: signing with the new key, the old one still listed.
	after := newEnvWithLDAP(t, ls, append(standardSPs(t), optionalMFA, withEntityID(stableEntityID),
		withSigningKeys(next, old))...)

	for _, e := range []*env{before, after} {
		site := e.sites["https://sp2.campus.example/sp"]
		sp := e.serviceProvider(site)
		sp.IDPCertificateStore = &dsig.MemoryX509CertificateStore{Roots: published}
		b := e.browser()
		id, target := redirectURL(t, sp, "")
		post := b.expectPost(b.Follow(b.submitLogin(b.Follow(b.Get(target)), testldap.Bob)))
		checkResponse(t, sp, site, post, id)

		onlyOld := e.serviceProvider(site)
		onlyOld.IDPCertificateStore = &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{old.cert}}
		_, err := onlyOld.RetrieveAssertionInfo(post.response)
		if signedWithOld := e == before; (err == nil) != signedWithOld {
			t.Errorf("SP trusting only the old certificate: err = %v (response signed with the old key: %v)", err, signedWithOld)
		}
	}
}

// Where Debian's xmltooling-schemas, opensaml-schemas and
// shibboleth-sp-common put the schemas (scripts/test.sh installs them).
var metadataSchemas = []struct{ namespace, file string }{
	// Imported first: libxml2 then skips the later imports of these
	// namespaces, whose schemaLocations are web addresses.
	{"http://www.w3.org/XML/1998/namespace", "/usr/share/xml/xmltooling/xml.xsd"},
	{"http://www.w3.org/2000/09/xmldsig#", "/usr/share/xml/xmltooling/xmldsig-core-schema.xsd"},
	{"http://www.w3.org/2001/04/xmlenc#", "/usr/share/xml/xmltooling/xenc-schema.xsd"},
	{"urn:oasis:names:tc:SAML:2.0:assertion", "/usr/share/xml/opensaml/saml-schema-assertion-2.0.xsd"},
	{"urn:oasis:names:tc:SAML:2.0:metadata", "/usr/share/xml/opensaml/saml-schema-metadata-2.0.xsd"},
	{"urn:oasis:names:tc:SAML:metadata:ui", "/usr/share/xml/opensaml/sstc-saml-metadata-ui-v1.0.xsd"},
	{"urn:mace:shibboleth:metadata:1.0", "/usr/share/xml/shibboleth/shibboleth-metadata-1.0.xsd"},
}

// validateMetadataXSD checks md against the OASIS metadata, mdui and
// shibmd schemas with xmllint, offline.
func validateMetadataXSD(t *testing.T, md []byte) {
	t.Helper()
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Fatal("xmllint is missing: install libxml2-utils (scripts/test.sh does)")
	}
	var wrapper strings.Builder
	wrapper.WriteString(`<?xml version="1.0"?>` + "\n" + `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:test:wrapper">` + "\n")
	for _, s := range metadataSchemas {
		if _, err := os.Stat(s.file); err != nil {
			t.Fatalf("schema %s is missing: install xmltooling-schemas, opensaml-schemas and shibboleth-sp-common (scripts/test.sh does)", s.file)
		}
		fmt.Fprintf(&wrapper, `  <xs:import namespace="%s" schemaLocation="file://%s"/>`+"\n", s.namespace, s.file)
	}
	wrapper.WriteString("</xs:schema>\n")
	dir := t.TempDir()
	xsd, doc := filepath.Join(dir, "all.xsd"), filepath.Join(dir, "metadata.xml")
	if err := os.WriteFile(xsd, []byte(wrapper.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(doc, md, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", xsd, doc).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "validates") {
		t.Errorf("metadata does not validate: %v\n%s\n%s", err, out, md)
	}
}

func fetchMetadata(t *testing.T, e *env) []byte {
	t.Helper()
	resp, err := http.Get(e.srv.URL + samlprovider.PathMetadata)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return body
}

// fullMetadata fills every setting of the IdP's metadata.
func fullMetadata(e *env, cfg *config.Config) {
	cfg.SAML.Metadata = config.SAMLMetadata{
		DisplayName:         config.Localized{JA: "キャンパス大学 認証", EN: "Campus University Login"},
		Description:         config.Localized{JA: "キャンパス大学の IdP", EN: "The IdP of Campus University"},
		InformationURL:      config.Localized{JA: "https://www.campus.example/ja/idp", EN: "https://www.campus.example/en/idp"},
		PrivacyStatementURL: config.Localized{JA: "https://www.campus.example/ja/privacy", EN: "https://www.campus.example/en/privacy"},
		Logo:                config.SAMLLogo{URL: "https://www.campus.example/logo.png", Width: 80, Height: 60},
		Organization: config.SAMLOrganization{
			Name:        config.Localized{JA: "キャンパス大学", EN: "Campus University"},
			DisplayName: config.Localized{JA: "キャンパス大学", EN: "Campus University"},
			URL:         config.Localized{JA: "https://www.campus.example/ja/", EN: "https://www.campus.example/en/"},
		},
		Contacts: []config.SAMLContact{
			{Type: config.ContactTechnical, Name: "IdP operators", Email: "idp-admin@campus.example"},
			{Type: config.ContactSupport, Name: "Helpdesk", Email: "helpdesk@campus.example"},
			{Type: config.ContactSecurity, Name: "CSIRT", Email: "csirt@campus.example"},
		},
		ErrorURL:                "https://www.campus.example/idp/error",
		EncryptionCertFile:      e.writeFile("enc.crt", testKey(e.t, keyIdPNext).certPEM()),
		WantAuthnRequestsSigned: true,
	}
}

// TestMetadataForFederations: the metadata carries everything a
// federation's registration asks for (UI texts in both languages, logo,
// organisation, technical, support and SIRTFI security contacts, errorURL,
// an encryption key, WantAuthnRequestsSigned), has no validUntil unless
// configured, and validates against the OASIS metadata, mdui and shibmd
// schemas, signed or not.
func TestMetadataForFederations(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		e := newEnv(t, optionalMFA)
		md := fetchMetadata(t, e)
		validateMetadataXSD(t, md)
		if strings.Contains(string(md), "validUntil") {
			t.Errorf("validUntil without valid_for:\n%s", md)
		}
		if strings.Contains(string(md), "WantAuthnRequestsSigned") {
			t.Error("WantAuthnRequestsSigned without the setting")
		}
	})
	t.Run("everything", func(t *testing.T) {
		e := newEnv(t, optionalMFA, fullMetadata, func(_ *env, cfg *config.Config) { cfg.SAML.Metadata.ValidFor = 240 * time.Hour })
		md := fetchMetadata(t, e)
		validateMetadataXSD(t, md)
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(md); err != nil {
			t.Fatal(err)
		}
		root := doc.Root()
		role := root.FindElement("IDPSSODescriptor")
		if role == nil {
			t.Fatalf("no IDPSSODescriptor:\n%s", md)
		}
		until, err := time.Parse(time.RFC3339, root.SelectAttrValue("validUntil", ""))
		if err != nil || until.Before(time.Now().Add(239*time.Hour)) || until.After(time.Now().Add(241*time.Hour)) {
			t.Errorf("validUntil %q, want 10 days from now", root.SelectAttrValue("validUntil", ""))
		}
		if got := role.SelectAttrValue("errorURL", ""); got != "https://www.campus.example/idp/error" {
			t.Errorf("errorURL %q", got)
		}
		if got := role.SelectAttrValue("WantAuthnRequestsSigned", ""); got != "true" {
			t.Errorf("WantAuthnRequestsSigned %q", got)
		}
		text := func(path string) []string {
			var out []string
			for _, el := range role.Parent().FindElements(path) {
				out = append(out, el.SelectAttrValue("lang", "")+"="+el.Text())
			}
			return out
		}
		for path, want := range map[string][]string{
			"IDPSSODescriptor/Extensions/Scope":                      {"=campus.example"},
			"IDPSSODescriptor/Extensions/UIInfo/DisplayName":         {"ja=キャンパス大学 認証", "en=Campus University Login"},
			"IDPSSODescriptor/Extensions/UIInfo/Description":         {"ja=キャンパス大学の IdP", "en=The IdP of Campus University"},
			"IDPSSODescriptor/Extensions/UIInfo/InformationURL":      {"ja=https://www.campus.example/ja/idp", "en=https://www.campus.example/en/idp"},
			"IDPSSODescriptor/Extensions/UIInfo/PrivacyStatementURL": {"ja=https://www.campus.example/ja/privacy", "en=https://www.campus.example/en/privacy"},
			"IDPSSODescriptor/Extensions/UIInfo/Logo":                {"=https://www.campus.example/logo.png"},
			"Organization/OrganizationName":                          {"ja=キャンパス大学", "en=Campus University"},
			"Organization/OrganizationDisplayName":                   {"ja=キャンパス大学", "en=Campus University"},
			"Organization/OrganizationURL":                           {"ja=https://www.campus.example/ja/", "en=https://www.campus.example/en/"},
			"ContactPerson/EmailAddress":                             {"=mailto:idp-admin@campus.example", "=mailto:helpdesk@campus.example", "=mailto:csirt@campus.example"},
		} {
			if got := text(path); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("%s = %q, want %q", path, got, want)
			}
		}
		if logo := role.FindElement("Extensions/UIInfo/Logo"); logo == nil || logo.SelectAttrValue("width", "") != "80" || logo.SelectAttrValue("height", "") != "60" {
			t.Error("logo size missing")
		}
		var types []string
		for _, c := range root.FindElements("ContactPerson") {
			types = append(types, c.SelectAttrValue("contactType", "")+" "+c.SelectAttrValue("remd:contactType", ""))
		}
		if want := []string{"technical ", "support ", "other http://refeds.org/metadata/contactType/security"}; strings.Join(types, "|") != strings.Join(want, "|") {
			t.Errorf("contacts %q, want %q", types, want)
		}
		var uses []string
		for _, kd := range role.FindElements("KeyDescriptor") {
			uses = append(uses, kd.SelectAttrValue("use", ""))
		}
		if strings.Join(uses, " ") != "signing encryption" {
			t.Errorf("key uses %v, want signing and encryption", uses)
		}
	})
	t.Run("signed", func(t *testing.T) {
		e := newEnv(t, optionalMFA, fullMetadata, func(_ *env, cfg *config.Config) {
			cfg.SAML.MetadataSigning = config.SAMLMetadataSigning{Enabled: true, ValidFor: 72 * time.Hour}
		})
		md := fetchMetadata(t, e)
		validateMetadataXSD(t, md)
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(md); err != nil {
			t.Fatal(err)
		}
		if first := doc.Root().ChildElements()[0]; first.Tag != "Signature" {
			t.Errorf("the signature is not the first child but %s", first.Tag)
		}
		ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{testKey(t, keyIdP).cert}})
		if _, err := ctx.Validate(doc.Root()); err != nil {
			t.Errorf("signed metadata does not verify: %v", err)
		}
		until, err := time.Parse(time.RFC3339, doc.Root().SelectAttrValue("validUntil", ""))
		if err != nil || until.After(time.Now().Add(73*time.Hour)) || until.Before(time.Now().Add(71*time.Hour)) {
			t.Errorf("signed metadata validUntil %q, want 72h", doc.Root().SelectAttrValue("validUntil", ""))
		}
	})
}

// TestWantAuthnRequestsSignedIsEnforced: an IdP whose metadata says
// WantAuthnRequestsSigned refuses unsigned requests from every SP, and
// takes signed ones.
func TestWantAuthnRequestsSignedIsEnforced(t *testing.T) {
	e := newEnv(t, append(standardSPs(t), optionalMFA, func(_ *env, cfg *config.Config) {
		cfg.SAML.Metadata.WantAuthnRequestsSigned = true
	})...)
	b := e.browser()
	_, unsigned := redirectURL(t, e.serviceProvider(e.sites["https://sp1.campus.example/shibboleth"]), "")
	if p := b.Follow(b.Get(unsigned)); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "not valid") {
		t.Errorf("unsigned request: %d, want refused:\n%s", p.Status, p.Body)
	}
	_, signed := redirectURL(t, e.serviceProvider(e.sites["https://sp2.campus.example/sp"]), "")
	if p := b.Follow(b.Get(signed)); !isLoginForm(p) {
		t.Errorf("signed request: %d, want the login form:\n%s", p.Status, p.Body)
	}
}
