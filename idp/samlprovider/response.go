package samlprovider

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"

	"github.com/campusidp/campusidp/config"
)

// signedAssertion signs req.Assertion and, when the SP is to receive
// encrypted assertions, encrypts it. The result is the element to put in
// the Response.
func (p *Provider) signedAssertion(req *saml.IdpAuthnRequest, sp *ServiceProvider) (*etree.Element, error) {
	s := signer{p.keys}
	sig, err := s.signatureFor(assertionElement(req.Assertion))
	if err != nil {
		return nil, fmt.Errorf("saml: signing the assertion: %w", err)
	}
	req.Assertion.Signature = sig
	el := assertionElement(req.Assertion)
	if !sp.encrypts() {
		return el, nil
	}
	enc, err := encryptAssertion(el, sp)
	if err != nil {
		return nil, fmt.Errorf("saml: encrypting the assertion: %w", err)
	}
	return enc, nil
}

// responseXML builds and signs a Response (with the assertion element, if
// any) and returns its serialisation.
func (p *Provider) responseXML(destination, inResponseTo string, status saml.Status, assertion *etree.Element) ([]byte, error) {
	resp := &saml.Response{
		ID:           newID(),
		InResponseTo: inResponseTo,
		Version:      "2.0",
		IssueInstant: samlTime(p.now()),
		Destination:  destination,
		Issuer:       &saml.Issuer{Format: issuerFormatSAML, Value: p.entityID},
		Status:       status,
	}
	render := func() *etree.Element {
		el := resp.Element()
		if assertion != nil {
			el.AddChild(assertion)
		}
		return el
	}
	out, err := signer{p.keys}.envelopedXML(render, func(sig *etree.Element) { resp.Signature = sig })
	if err != nil {
		return nil, fmt.Errorf("saml: signing the response: %w", err)
	}
	return out, nil
}

func statusOf(top, second string) saml.Status {
	st := saml.Status{StatusCode: saml.StatusCode{Value: top}}
	if second != "" {
		st.StatusCode.StatusCode = &saml.StatusCode{Value: second}
	}
	return st
}

// postForm is the data of the saml_post page.
type postForm struct {
	TitleKey     string
	ServiceName  string
	Action       string
	SAMLResponse string // the message, base64 (a response unless Param says otherwise)
	RelayState   string
	// Param is the form field of the message: SAMLResponse when empty,
	// SAMLRequest for a LogoutRequest we send.
	Param string
}

// postCSP is the page's policy: the strict policy of every page, plus our
// one external script and the SP's origin as a form target.
const postCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; " +
	"form-action 'self' %s; frame-ancestors 'none'; base-uri 'none'"

// postTo sends a SAML response message to the SP with the HTTP-POST
// binding: a form with a Continue button that /static/autosubmit.js
// submits on load.
func (p *Provider) postTo(w http.ResponseWriter, r *http.Request, action string, xmlBytes []byte, relayState, serviceName, titleKey string) {
	origin, err := originOf(action)
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Security-Policy", fmt.Sprintf(postCSP, origin))
	p.app.RenderPage(w, r, http.StatusOK, "saml_post", postForm{
		TitleKey:     titleKey,
		ServiceName:  serviceName,
		Action:       action,
		SAMLResponse: base64.StdEncoding.EncodeToString(xmlBytes),
		RelayState:   relayState,
	})
}

// originOf returns scheme://host[:port] of an endpoint URL (already
// checked to be http(s) when the metadata was loaded).
func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("saml: endpoint %q is not an http(s) URL", raw)
	}
	origin := u.Scheme + "://" + u.Host
	if strings.ContainsAny(origin, " ;,'\"\t\r\n") {
		return "", fmt.Errorf("saml: endpoint %q cannot be named in a CSP", raw)
	}
	return origin, nil
}

// Block ciphers for encrypted assertions, by XML Encryption URI.
const (
	uriAES128GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
	uriAES256GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
	uriAES128CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
	uriAES256CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
)

var blockCiphers = map[string]xmlenc.BlockCipher{
	uriAES128GCM: gcm{keySize: 16, algorithm: uriAES128GCM},
	uriAES256GCM: gcm{keySize: 32, algorithm: uriAES256GCM},
	uriAES128CBC: xmlenc.AES128CBC,
	uriAES256CBC: xmlenc.AES256CBC,
}

var cipherSettings = map[string]string{
	config.CipherAES128GCM: uriAES128GCM,
	config.CipherAES256GCM: uriAES256GCM,
	config.CipherAES128CBC: uriAES128CBC,
	config.CipherAES256CBC: uriAES256CBC,
}

// blockCipherFor picks the cipher: the configured one, else the first the
// SP's metadata lists that we support, else AES-256-GCM.
func blockCipherFor(sp *ServiceProvider) xmlenc.BlockCipher {
	if uri, ok := cipherSettings[sp.Config.EncryptionCipher]; ok {
		return blockCiphers[uri]
	}
	for _, m := range sp.EncryptionMethods {
		if c, ok := blockCiphers[m]; ok {
			return c
		}
	}
	return blockCiphers[uriAES256GCM]
}

// encryptAssertion wraps the signed assertion in an EncryptedAssertion for
// the SP's key: the content key travels RSA-OAEP (MGF1-SHA1, the form every
// SAML SP decrypts).
func encryptAssertion(signed *etree.Element, sp *ServiceProvider) (*etree.Element, error) {
	doc := etree.NewDocument()
	doc.SetRoot(signed.Copy())
	plain, err := doc.WriteToBytes()
	if err != nil {
		return nil, err
	}
	enc := xmlenc.OAEP()
	enc.BlockCipher = blockCipherFor(sp)
	enc.DigestMethod = xmlenc.SHA1
	data, err := enc.Encrypt(sp.EncryptionCert, plain, nil)
	if err != nil {
		return nil, err
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	ea := etree.NewElement("saml:EncryptedAssertion")
	ea.AddChild(data)
	return ea, nil
}

// gcm is AES-GCM for XML Encryption 1.1: the CipherValue is the 12-byte
// nonce, the ciphertext and the 16-byte tag. (crewjam's own GCM type does
// not encrypt correctly in v0.5.1, so it is not used.)
type gcm struct {
	keySize   int
	algorithm string
}

func (g gcm) KeySize() int      { return g.keySize }
func (g gcm) Algorithm() string { return g.algorithm }

func (g gcm) aead(key any) (cipher.AEAD, error) {
	k, ok := key.([]byte)
	if !ok || len(k) != g.keySize {
		return nil, fmt.Errorf("saml: AES-GCM needs a %d-byte key", g.keySize)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Encrypt implements xmlenc.Encrypter. nonce must be nil (a random one is
// drawn).
func (g gcm) Encrypt(key any, plaintext, nonce []byte) (*etree.Element, error) {
	if nonce != nil {
		return nil, errors.New("saml: AES-GCM nonces are drawn, not given")
	}
	aead, err := g.aead(key)
	if err != nil {
		return nil, err
	}
	nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	sealed := aead.Seal(nonce, nonce, plaintext, nil)

	el := etree.NewElement("xenc:EncryptedData")
	el.CreateAttr("xmlns:xenc", "http://www.w3.org/2001/04/xmlenc#")
	el.CreateAttr("Id", newID())
	em := el.CreateElement("xenc:EncryptionMethod")
	em.CreateAttr("Algorithm", g.algorithm)
	cd := el.CreateElement("xenc:CipherData")
	cd.CreateElement("xenc:CipherValue").SetText(base64.StdEncoding.EncodeToString(sealed))
	return el, nil
}

// Decrypt implements xmlenc.Decrypter for an EncryptedData whose content
// key is already known.
func (g gcm) Decrypt(key any, ciphertextEl *etree.Element) ([]byte, error) {
	aead, err := g.aead(key)
	if err != nil {
		return nil, err
	}
	cv := ciphertextEl.FindElement("./CipherData/CipherValue")
	if cv == nil {
		return nil, errors.New("saml: no CipherValue")
	}
	sealed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cv.Text()))
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("saml: AES-GCM ciphertext too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
}

// assertionElement is the assertion's XML. crewjam writes xsi:type on every
// AttributeValue; an empty one (a NameID value, eduPersonTargetedID) is not
// a type, and is dropped.
func assertionElement(a *saml.Assertion) *etree.Element {
	el := a.Element()
	for _, v := range el.FindElements(".//AttributeValue") {
		if t := v.SelectAttr("xsi:type"); t != nil && t.Value == "" {
			v.RemoveAttr("xsi:type")
		}
	}
	return el
}
