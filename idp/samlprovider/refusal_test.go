package samlprovider_test

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp/samlprovider"
)

// jsSite is an SP whose metadata lists a javascript: ACS (the crewjam/saml
// advisory): its metadata must be refused, so it is never registered.
func jsSite(t *testing.T) spSite {
	return spSite{
		EntityID: "https://evil-acs.campus.example/sp",
		ACS:      []string{"https://evil-acs.campus.example/acs"},
		SignKey:  testKey(t, keySPOther),
		ExtraACS: `<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="javascript:alert(document.domain)" index="7"/>`,
	}
}

// TestRequestsRefused: every request below is turned away with an error
// page; none of them gets anything posted to an ACS.
func TestRequestsRefused(t *testing.T) {
	js := jsSite(t)
	e := newEnv(t, append(standardSPs(t), optionalMFA, withSP(js, config.SAMLServiceProvider{}))...)
	sp1Site := e.sites["https://sp1.campus.example/shibboleth"]
	sp2Site := e.sites["https://sp2.campus.example/sp"]
	maxXML := e.cfg.SAML.MaxInflatedBytes

	// get sends the browser to an SSO URL; post posts a form to /saml/sso.
	type attempt func(t *testing.T, b *browser) page
	get := func(u string) attempt { return func(t *testing.T, b *browser) page { return b.Follow(b.Get(u)) } }
	post := func(form url.Values) attempt {
		return func(t *testing.T, b *browser) page { return b.Follow(b.Post(samlprovider.PathSSO, form)) }
	}
	unsignedURL := func(site spSite, edit func(sp *saml2.SAMLServiceProvider)) string {
		sp := e.serviceProvider(site)
		if edit != nil {
			edit(sp)
		}
		_, u := redirectURL(t, sp, "")
		return u
	}
	// editXML changes an unsigned request's XML before encoding it.
	editXML := func(site spSite, from, to string) string {
		_, raw := authnRequest(t, e.serviceProvider(site))
		if !bytes.Contains(raw, []byte(from)) {
			t.Fatalf("request has no %q", from)
		}
		return e.rawRedirectURL(bytes.ReplaceAll(raw, []byte(from), []byte(to)), "")
	}

	cases := []struct {
		name    string
		attempt attempt
		want    string // on the error page
		reason  string // in the audit event
	}{
		{"unknown SP", get(unsignedURL(sp1Site, func(sp *saml2.SAMLServiceProvider) {
			sp.ServiceProviderIssuer = "https://unknown.example/sp"
		})), "not registered", "unregistered SP"},
		{"metadata with a javascript: ACS is not registered", get(unsignedURL(js, nil)), "not registered", "unregistered SP"},
		{"ACS URL not in the metadata", get(unsignedURL(sp1Site, func(sp *saml2.SAMLServiceProvider) {
			sp.AssertionConsumerServiceURL = "https://attacker.example/acs"
		})), "not valid", "ACS not in"},
		{"ACS URL of another SP", get(unsignedURL(sp1Site, func(sp *saml2.SAMLServiceProvider) {
			sp.AssertionConsumerServiceURL = sp2Site.ACS[0]
		})), "not valid", "ACS not in"},
		{"javascript: ACS URL in the request", get(unsignedURL(sp1Site, func(sp *saml2.SAMLServiceProvider) {
			sp.AssertionConsumerServiceURL = "javascript:alert(1)"
		})), "not valid", "ACS not in"},
		{"response binding other than POST", get(editXML(sp1Site,
			`ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"`,
			`ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"`)), "not valid", "unsupported binding"},
		{"addressed to another IdP", get(editXML(sp1Site, `Destination="`+e.srv.URL+samlprovider.PathSSO+`"`,
			`Destination="https://other-idp.example/sso"`)), "not valid", "another endpoint"},
		{"issued an hour ago", get(unsignedURL(sp1Site, func(sp *saml2.SAMLServiceProvider) {
			sp.Clock = dsig.NewFakeClockAt(time.Now().Add(-time.Hour))
		})), "expired", "too old"},
		{"issued in the future", get(unsignedURL(sp1Site, func(sp *saml2.SAMLServiceProvider) {
			sp.Clock = dsig.NewFakeClockAt(time.Now().Add(time.Hour))
		})), "expired", "from the future"},
		{"not SAML", get(e.rawRedirectURL([]byte("<hello/>"), "")), "not valid", "unexpected message"},
		{"a LogoutRequest at the SSO endpoint", get(editXML(sp1Site, "samlp:AuthnRequest", "samlp:LogoutRequest")), "not valid", "unexpected message"},
		{"DOCTYPE", get(editXML(sp1Site, `<samlp:AuthnRequest`, `<!DOCTYPE samlp:AuthnRequest [<!ENTITY a "aaaa">]><samlp:AuthnRequest`)), "not valid", "DOCTYPE"},
		{"oversized (Redirect)", get(e.srv.URL + samlprovider.PathSSO + "?SAMLRequest=" +
			strings.Repeat("A", e.cfg.SAML.MaxRequestBytes+4)), "not valid", "too large"},
		{"oversized (POST)", post(url.Values{"SAMLRequest": {strings.Repeat("A", e.cfg.SAML.MaxRequestBytes+4)}}), "not valid", "too large"},
		{"deflate bomb", get(deflateBomb(t, e, 40*maxXML)), "not valid", "inflates to more than"},
		{"RelayState too long", get(e.rawRedirectURL([]byte("<x/>"), strings.Repeat("r", 2000))), "not valid", "RelayState"},
		{"unsigned request of an SP that signs", get(unsignedURL(sp2Site, func(sp *saml2.SAMLServiceProvider) {
			sp.SignAuthnRequests = false
		})), "not valid", "must sign"},
		{"tampered signature (Redirect)", get(tamper(t, unsignedURL(sp2Site, nil), "Signature")), "not valid", "does not verify"},
		{"tampered request under a valid signature (Redirect)", get(tamper(t, unsignedURL(sp2Site, nil), "SAMLRequest")), "not valid", "does not verify"},
		{"SHA-1 signature", get(unsignedURL(sp2Site, func(sp *saml2.SAMLServiceProvider) {
			sp.SignAuthnRequestsAlgorithm = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
		})), "not valid", "algorithm not accepted"},
		{"signed with another key", get(unsignedURL(sp2Site, func(sp *saml2.SAMLServiceProvider) {
			_ = sp.SetSPKeyStore(&saml2.KeyStore{Signer: testKey(t, keySP).key, Cert: testKey(t, keySP).cert.Raw})
		})), "not valid", "does not verify"},
		{"tampered request under a valid signature (POST)", post(tamperedPOST(t, e, sp2Site)), "not valid", "does not verify"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.audited("saml_refused"))
			p := tc.attempt(t, e.browser())
			if p.Status != http.StatusBadRequest || strings.Contains(p.Body, "SAMLResponse") || isLoginForm(p) {
				t.Fatalf("status %d (%s), want a refusal page:\n%s", p.Status, p.URL, p.Body)
			}
			if !strings.Contains(p.Body, tc.want) {
				t.Errorf("refusal page does not say %q:\n%s", tc.want, p.Body)
			}
			events := e.audited("saml_refused")
			if len(events) != before+1 {
				t.Fatal("the refusal was not audited")
			}
			if got := events[0].Detail["reason"]; !strings.Contains(got, tc.reason) {
				t.Errorf("refused because %q, want %q", got, tc.reason)
			}
		})
	}

	t.Run("replayed request", func(t *testing.T) {
		u := unsignedURL(sp1Site, nil)
		if p := e.browser().Follow(e.browser().Get(u)); !isLoginForm(p) {
			t.Fatalf("first use: %d\n%s", p.Status, p.Body)
		}
		b := e.browser()
		if p := b.Follow(b.Get(u)); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "already used") {
			t.Fatalf("replay: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("replayed signed POST", func(t *testing.T) {
		doc, err := e.serviceProvider(sp2Site).BuildAuthRequestDocument()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := doc.WriteToBytes()
		form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}}
		b := e.browser()
		if p := b.Post(samlprovider.PathSSO, form); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, samlprovider.PathContinue) {
			t.Fatalf("first use: %d %s", p.Status, p.Location)
		}
		if p := b.Follow(b.Post(samlprovider.PathSSO, form)); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "already used") {
			t.Fatalf("replay: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("javascript: ACS metadata logged", func(t *testing.T) {
		if !strings.Contains(e.logs.String(), "SP metadata not loaded") || !strings.Contains(e.logs.String(), js.EntityID) {
			t.Error("the refused metadata was not logged")
		}
		if _, ok := e.prov.Registry().Lookup(js.EntityID); ok {
			t.Error("the SP with a javascript: ACS is registered")
		}
	})
}

// deflateBomb is a request that is small on the wire and inflates to
// inflated bytes.
func deflateBomb(t *testing.T, e *env, inflated int) string {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = fw.Write([]byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">`))
	_, _ = fw.Write(bytes.Repeat([]byte(" "), inflated))
	_ = fw.Close()
	if buf.Len() > e.cfg.SAML.MaxRequestBytes/2 {
		t.Fatalf("the bomb is %d bytes on the wire; it must pass the size limit to test the inflate limit", buf.Len())
	}
	return e.srv.URL + samlprovider.PathSSO + "?SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
}

// tamper changes one query parameter of a signed Redirect URL while
// keeping the others (and so the signature) as they are.
func tamper(t *testing.T, signedURL, param string) string {
	t.Helper()
	u, _ := url.Parse(signedURL)
	q := u.Query()
	if q.Get("Signature") == "" {
		t.Fatal("the URL is not signed")
	}
	switch param {
	case "Signature":
		sig, _ := base64.StdEncoding.DecodeString(q.Get("Signature"))
		sig[len(sig)/2] ^= 0x01
		q.Set("Signature", base64.StdEncoding.EncodeToString(sig))
	case "SAMLRequest":
		compressed, _ := base64.StdEncoding.DecodeString(q.Get("SAMLRequest"))
		raw, err := readAllFlate(compressed)
		if err != nil {
			t.Fatal(err)
		}
		// A different (and still sound) request ID: only the signature
		// can tell.
		if !bytes.Contains(raw, []byte(`ID="_`)) {
			t.Fatal("no request ID")
		}
		raw = bytes.Replace(raw, []byte(`ID="_`), []byte(`ID="_x`), 1)
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.DefaultCompression)
		_, _ = fw.Write(raw)
		_ = fw.Close()
		q.Set("SAMLRequest", base64.StdEncoding.EncodeToString(buf.Bytes()))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func readAllFlate(b []byte) ([]byte, error) {
	var out bytes.Buffer
	_, err := out.ReadFrom(flate.NewReader(bytes.NewReader(b)))
	return out.Bytes(), err
}

// tamperedPOST is a signed POST request whose ID was changed after
// signing.
func tamperedPOST(t *testing.T, e *env, site spSite) url.Values {
	t.Helper()
	doc, err := e.serviceProvider(site).BuildAuthRequestDocument()
	if err != nil {
		t.Fatal(err)
	}
	doc.Root().SelectAttr("ID").Value += "x"
	raw, _ := doc.WriteToBytes()
	return url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}}
}
