package samlprovider_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
	if until := md.ValidUntil; until.Before(time.Now().Add(24*time.Hour)) || until.After(time.Now().Add(8*24*time.Hour)) {
		t.Errorf("validUntil %s", until)
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
