package samlprovider

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/russellhaering/gosaml2/types"

	"github.com/campusidp/campusidp/config"
)

// TestEncryptAssertionCiphers: each cipher the IdP may choose produces an
// EncryptedAssertion that an independent SP implementation (gosaml2)
// decrypts to the signed assertion, and the choice follows the setting,
// then the SP's metadata.
func TestEncryptAssertionCiphers(t *testing.T) {
	key, cert := unitKey(t, 0)
	plain := etree.NewElement("saml:Assertion")
	plain.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	plain.CreateAttr("ID", "_a1")
	plain.CreateElement("saml:Issuer").SetText("https://idp.example/ 山田")
	cases := []struct {
		name    string
		setting string
		methods []string
		want    string
	}{
		{"default", "", nil, uriAES256GCM},
		{"metadata order", "", []string{"http://www.w3.org/2001/04/xmlenc#tripledes-cbc", uriAES128CBC, uriAES256GCM}, uriAES128CBC},
		{"only unknown methods listed", "", []string{"urn:example:cipher"}, uriAES256GCM},
		{"setting wins", config.CipherAES128GCM, []string{uriAES256CBC}, uriAES128GCM},
		{"aes256-cbc", config.CipherAES256CBC, nil, uriAES256CBC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp := &ServiceProvider{Config: config.SAMLServiceProvider{EncryptionCipher: tc.setting}, EncryptionCert: cert, EncryptionMethods: tc.methods}
			el, err := encryptAssertion(plain, sp)
			if err != nil {
				t.Fatal(err)
			}
			doc := etree.NewDocument()
			doc.SetRoot(el)
			raw, _ := doc.WriteToBytes()
			if !strings.Contains(string(raw), `Algorithm="`+tc.want+`"`) || strings.Contains(string(raw), "山田") {
				t.Fatalf("not encrypted with %s:\n%s", tc.want, raw)
			}
			// gosaml2 expects the saml namespace declared, as a Response does.
			wrapped := strings.Replace(string(raw), "<saml:EncryptedAssertion", `<saml:EncryptedAssertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"`, 1)
			var ea types.EncryptedAssertion
			if err := xml.Unmarshal([]byte(wrapped), &ea); err != nil {
				t.Fatal(err)
			}
			got, err := ea.DecryptBytes(&tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key})
			if err != nil {
				t.Fatalf("gosaml2 cannot decrypt: %v", err)
			}
			if !strings.Contains(string(got), `ID="_a1"`) || !strings.Contains(string(got), "山田") {
				t.Errorf("decrypted to %s", got)
			}
		})
	}
}

func TestGCMRoundTrip(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	g := blockCiphers[uriAES256GCM].(gcm)
	a, err := g.Encrypt(key, []byte("secret assertion"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := g.Encrypt(key, []byte("secret assertion"), nil)
	if a.FindElement("./CipherData/CipherValue").Text() == b.FindElement("./CipherData/CipherValue").Text() {
		t.Error("two encryptions are equal: the nonce is not fresh")
	}
	plain, err := g.Decrypt(key, a)
	if err != nil || string(plain) != "secret assertion" {
		t.Errorf("Decrypt = %q, %v", plain, err)
	}
	cv := a.FindElement("./CipherData/CipherValue")
	sealed, _ := base64.StdEncoding.DecodeString(cv.Text())
	sealed[len(sealed)-20] ^= 1
	cv.SetText(base64.StdEncoding.EncodeToString(sealed))
	if _, err := g.Decrypt(key, a); err == nil {
		t.Error("a changed ciphertext decrypted")
	}
	if _, err := g.Encrypt([]byte("short"), []byte("x"), nil); err == nil {
		t.Error("a short key was accepted")
	}
	if _, err := g.Encrypt(key, []byte("x"), make([]byte, 12)); err == nil {
		t.Error("a caller-chosen nonce was accepted")
	}
}
