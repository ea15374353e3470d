package samlprovider_test

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/internal/testldap"
)

// TestSingleLogoutEndsOnlyWhatTheSPWasGiven: a signed LogoutRequest ends
// the browser's session only if it names a session issued to that SP: a
// transient NameID or SessionIndex the SP never got ends nothing, and an
// unspecified NameID format is refused.
func TestSingleLogoutEndsOnlyWhatTheSPWasGiven(t *testing.T) {
	e := newEnv(t, append(standardSPs(t), optionalMFA)...)
	site1 := e.sites["https://sp1.campus.example/shibboleth"]
	sp1 := e.serviceProvider(site1)
	sp1.NameIdFormat = samlprovider.NameIDFormatPersistent
	site2 := e.sites["https://sp2.campus.example/sp"]
	sp2 := e.serviceProvider(site2)
	sp2.NameIdFormat = samlprovider.NameIDFormatTransient

	b := e.browser()
	id, target := redirectURL(t, sp1, "")
	info := checkResponse(t, sp1, site1, b.expectPost(b.Follow(b.submitLogin(b.Follow(b.Get(target)), testldap.Bob))), id)
	stillSignedIn := func() bool {
		sp1.IsPassive = true
		defer func() { sp1.IsPassive = false }()
		_, target := redirectURL(t, sp1, "")
		_, err := sp1.RetrieveAssertionInfo(b.expectPost(b.Follow(b.Get(target))).response)
		return err == nil
	}

	post := func(doc interface{ WriteToBytes() ([]byte, error) }) string {
		raw, _ := doc.WriteToBytes()
		p := b.Follow(b.Post(samlprovider.PathSLO, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}}))
		if strings.Contains(p.Body, `name="SAMLResponse"`) {
			decoded, _ := base64.StdEncoding.DecodeString(b.expectPost(p).response)
			return string(decoded)
		}
		return p.Body
	}

	// sp2 never got a session from this browser.
	for _, tc := range []struct{ nameID, index string }{
		{"made-up-transient-id", "made-up-index"},
		{"made-up-transient-id", ""},
		{info.NameID, info.SessionIndex}, // sp1's, replayed by sp2
	} {
		doc, err := sp2.BuildLogoutRequestDocument(tc.nameID, tc.index)
		if err != nil {
			t.Fatal(err)
		}
		post(doc)
		if !stillSignedIn() {
			t.Fatalf("sp2's transient LogoutRequest %+v ended a session sp2 never got", tc)
		}
	}

	// sp1 with a SessionIndex it was not given, or none with a transient NameID.
	sp1.NameIdFormat = samlprovider.NameIDFormatTransient
	for _, tc := range []struct{ nameID, index string }{{info.NameID, "not-the-index"}, {"some-transient", ""}} {
		doc, _ := sp1.BuildLogoutRequestDocument(tc.nameID, tc.index)
		if answer := post(doc); !strings.Contains(answer, "status:UnknownPrincipal") {
			t.Errorf("LogoutRequest %+v answered:\n%s", tc, answer)
		}
		if !stillSignedIn() {
			t.Fatalf("LogoutRequest %+v ended the session", tc)
		}
	}

	// The unspecified format names nobody: refused.
	sp1.NameIdFormat = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
	doc, _ := sp1.BuildLogoutRequestDocument(info.NameID, info.SessionIndex)
	if answer := post(doc); !strings.Contains(answer, "status:RequestDenied") {
		t.Errorf("unspecified NameID answered:\n%s", answer)
	}
	if !stillSignedIn() {
		t.Fatal("an unspecified-NameID LogoutRequest ended the session")
	}

	// What sp1 was given ends the session.
	sp1.NameIdFormat = samlprovider.NameIDFormatPersistent
	doc, _ = sp1.BuildLogoutRequestDocument(info.NameID, info.SessionIndex)
	if answer := post(doc); !strings.Contains(answer, "status:Success") {
		t.Fatalf("sp1's own LogoutRequest answered:\n%s", answer)
	}
	_, target = redirectURL(t, sp1, "")
	if p := b.Follow(b.Get(target)); !isLoginForm(p) {
		t.Error("sp1's own LogoutRequest did not end the session")
	}
}
