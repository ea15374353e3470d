package samlprovider

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// signatureMethod is how the IdP signs everything: RSA-SHA256.
const signatureMethod = dsig.RSASHA256SignatureMethod

// acceptedSignatureMethods are the algorithms accepted on SP messages and
// metadata; SHA-1 is refused.
var acceptedSignatureMethods = map[string]x509.SignatureAlgorithm{
	dsig.RSASHA256SignatureMethod:   x509.SHA256WithRSA,
	dsig.RSASHA384SignatureMethod:   x509.SHA384WithRSA,
	dsig.RSASHA512SignatureMethod:   x509.SHA512WithRSA,
	dsig.ECDSASHA256SignatureMethod: x509.ECDSAWithSHA256,
	dsig.ECDSASHA384SignatureMethod: x509.ECDSAWithSHA384,
	dsig.ECDSASHA512SignatureMethod: x509.ECDSAWithSHA512,
}

var acceptedDigestMethods = map[string]bool{
	"http://www.w3.org/2001/04/xmlenc#sha256":       true,
	"http://www.w3.org/2001/04/xmldsig-more#sha384": true,
	"http://www.w3.org/2001/04/xmlenc#sha512":       true,
}

// Errors of signature checks.
var (
	errNoSignature    = errors.New("saml: message is not signed")
	errBadSignature   = errors.New("saml: signature does not verify")
	errWeakAlgorithm  = errors.New("saml: signature algorithm not accepted")
	errNoSignerCerts  = errors.New("saml: no signing certificate in the SP metadata")
	errMultipleSigned = errors.New("saml: more than one signature")
)

// signer signs IdP messages with the current key.
type signer struct{ keys *KeySet }

func (s signer) context() (*dsig.SigningContext, error) {
	ctx, err := dsig.NewSigningContext(s.keys.Signer, [][]byte{s.keys.Certificate.Raw})
	if err != nil {
		return nil, err
	}
	// Exclusive canonicalization without a prefix list is what every SAML
	// implementation verifies.
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(signatureMethod); err != nil {
		return nil, err
	}
	return ctx, nil
}

// signatureFor returns the enveloped ds:Signature of el (which must carry
// its ID attribute). The caller places it where the schema wants it, right
// after the Issuer.
func (s signer) signatureFor(el *etree.Element) (*etree.Element, error) {
	ctx, err := s.context()
	if err != nil {
		return nil, err
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		return nil, err
	}
	children := signed.ChildElements()
	return children[len(children)-1], nil
}

// signQuery signs the octets of an HTTP-Redirect message (RSA-SHA256).
func (s signer) signQuery(signed string) ([]byte, error) {
	digest := crypto.SHA256.New()
	digest.Write([]byte(signed))
	return s.keys.Signer.Sign(rand.Reader, digest.Sum(nil), crypto.SHA256)
}

// checkSignatureAlgorithms refuses any signature in the document that uses
// an algorithm we do not accept, and more than one signature on the root.
func checkSignatureAlgorithms(root *etree.Element) (signed bool, err error) {
	var walk func(el *etree.Element, depth int) error
	walk = func(el *etree.Element, depth int) error {
		for _, c := range el.ChildElements() {
			if c.Tag == "Signature" && c.NamespaceURI() == dsig.Namespace {
				if depth == 0 {
					if signed {
						return errMultipleSigned
					}
					signed = true
				}
				method := c.FindElement("./SignedInfo/SignatureMethod")
				if method == nil {
					return errBadSignature
				}
				if _, ok := acceptedSignatureMethods[method.SelectAttrValue("Algorithm", "")]; !ok {
					return fmt.Errorf("%w: %s", errWeakAlgorithm, method.SelectAttrValue("Algorithm", ""))
				}
				for _, ref := range c.FindElements("./SignedInfo/Reference/DigestMethod") {
					if !acceptedDigestMethods[ref.SelectAttrValue("Algorithm", "")] {
						return fmt.Errorf("%w: digest %s", errWeakAlgorithm, ref.SelectAttrValue("Algorithm", ""))
					}
				}
				continue
			}
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return signed, walk(root, 0)
}

// verifyEnveloped checks the enveloped signature on root against the
// certificates and returns the element the signature covers; only that
// element may be read afterwards (signature wrapping). Certificate validity
// dates are not checked: SAML metadata, not a CA, vouches for these keys.
func verifyEnveloped(root *etree.Element, certs []*x509.Certificate) (*etree.Element, error) {
	signed, err := checkSignatureAlgorithms(root)
	if err != nil {
		return nil, err
	}
	if !signed {
		return nil, errNoSignature
	}
	if len(certs) == 0 {
		return nil, errNoSignerCerts
	}
	for _, cert := range certs {
		ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
		ctx.Clock = dsig.NewFakeClockAt(cert.NotBefore.Add(time.Second))
		if el, err := ctx.Validate(root); err == nil {
			return el, nil
		}
	}
	return nil, errBadSignature
}

// verifyQuerySignature checks an HTTP-Redirect binding signature over the
// octets signed by the sender.
func verifyQuerySignature(sigAlg string, signed, signature []byte, certs []*x509.Certificate) error {
	alg, ok := acceptedSignatureMethods[sigAlg]
	if !ok {
		return fmt.Errorf("%w: %s", errWeakAlgorithm, sigAlg)
	}
	if len(certs) == 0 {
		return errNoSignerCerts
	}
	for _, cert := range certs {
		if cert.CheckSignature(alg, signed, signature) == nil {
			return nil
		}
	}
	return errBadSignature
}

// hasDirective reports a <!DOCTYPE ...> (or any other directive) in the
// document. SAML messages and metadata must not carry a DTD (SAML core
// 1.3), and refusing it closes the door on entity tricks.
func hasDirective(doc *etree.Document) bool {
	for _, tok := range doc.Child {
		if _, ok := tok.(*etree.Directive); ok {
			return true
		}
	}
	return false
}

// envelopedXML signs a protocol message for the HTTP-POST binding (an
// enveloped signature set with attach) and serializes it; el renders the
// message, before and after the signature is attached.
func (s signer) envelopedXML(el func() *etree.Element, attach func(sig *etree.Element)) ([]byte, error) {
	sig, err := s.signatureFor(el())
	if err != nil {
		return nil, err
	}
	attach(sig)
	doc := etree.NewDocument()
	doc.SetRoot(el())
	return doc.WriteToBytes()
}
