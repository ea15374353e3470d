package samlprovider

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/store"
)

// minRSABits is the smallest signing key accepted.
const minRSABits = 2048

// KeySet is the IdP's signing key with its certificate, and every
// certificate the metadata publishes: the signing one first, then those of
// the next or previous key during a rollover.
type KeySet struct {
	Signer      crypto.Signer
	Certificate *x509.Certificate
	Published   []*x509.Certificate
}

// LoadKeySet reads the signing key and certificates named in the config.
func LoadKeySet(c config.SAMLSigning) (*KeySet, error) {
	keyPEM, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("saml: signing key: %w", err)
	}
	certPEM, err := os.ReadFile(c.CertFile)
	if err != nil {
		return nil, fmt.Errorf("saml: signing certificate: %w", err)
	}
	ks, err := parseKeySet(keyPEM, certPEM)
	if err != nil {
		return nil, err
	}
	for _, f := range c.ExtraCertFiles {
		cert, err := readCertFile(f)
		if err != nil {
			return nil, fmt.Errorf("saml: extra certificate: %w", err)
		}
		ks.publish(cert)
	}
	return ks, nil
}

func parseKeySet(keyPEM, certPEM []byte) (*KeySet, error) {
	signer, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("saml: signing key: %w", err)
	}
	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("saml: signing certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(signer.Public()) {
		return nil, errors.New("saml: the signing certificate does not belong to the signing key")
	}
	return &KeySet{Signer: signer, Certificate: cert, Published: []*x509.Certificate{cert}}, nil
}

func (ks *KeySet) publish(cert *x509.Certificate) {
	for _, c := range ks.Published {
		if c.Equal(cert) {
			return
		}
	}
	ks.Published = append(ks.Published, cert)
}

func parsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		rsaKey, ok := key.(*rsa.PrivateKey)
		if !ok {
			// Responses are signed RSA-SHA256, which every SP verifies.
			return nil, fmt.Errorf("the key is a %T; an RSA key is required", key)
		}
		if rsaKey.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("the RSA key has %d bits; at least %d are required", rsaKey.N.BitLen(), minRSABits)
		}
		return rsaKey, nil
	}
}

// readCertFile reads the first certificate of a PEM file.
func readCertFile(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cert, err := parseCertificatePEM(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

func parseCertificatePEM(data []byte) (*x509.Certificate, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM certificate found")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// GenerateKeySet makes a fresh RSA key and a self-signed certificate valid
// for the given time. SAML trusts the certificate through the metadata,
// not through a CA, so self-signed is the norm.
func GenerateKeySet(entityID string, notBefore time.Time, validity time.Duration) (*KeySet, error) {
	key, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	cn := entityID
	if len(cn) > 64 { // the X.509 upper bound of a common name
		cn = cn[:64]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore.Add(-time.Hour),
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeySet{Signer: key, Certificate: cert, Published: []*x509.Certificate{cert}}, nil
}

const (
	recordSigningKey = "saml_signing_key"
	generatedKeyID   = "generated"
	generatedKeyLife = 10 * 365 * 24 * time.Hour
)

type storedKey struct {
	Key  []byte `json:"key"`  // PKCS#8 DER
	Cert []byte `json:"cert"` // DER
}

// GeneratedKeySet returns the key kept in the store, generating and storing
// one on first use (saml.signing.generate, as idp dev does). Processes
// starting together settle on one key: only the first store succeeds, and
// every process then uses the stored key.
func GeneratedKeySet(ctx context.Context, st Store, entityID string, now time.Time) (*KeySet, error) {
	ks, err := loadStoredKey(ctx, st, now)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return ks, err
	}
	ks, err = GenerateKeySet(entityID, now, generatedKeyLife)
	if err != nil {
		return nil, fmt.Errorf("saml: generating the signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ks.Signer)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(storedKey{Key: der, Cert: ks.Certificate.Raw})
	if err != nil {
		return nil, err
	}
	err = st.AddRecord(ctx, recordSigningKey, generatedKeyID, raw, ks.Certificate.NotAfter, now)
	if err != nil && !errors.Is(err, store.ErrExists) {
		return nil, fmt.Errorf("saml: storing the signing key: %w", err)
	}
	return loadStoredKey(ctx, st, now)
}

func loadStoredKey(ctx context.Context, st Store, now time.Time) (*KeySet, error) {
	raw, err := st.GetRecord(ctx, recordSigningKey, generatedKeyID, now)
	if err != nil {
		return nil, err
	}
	var sk storedKey
	if err := json.Unmarshal(raw, &sk); err != nil {
		return nil, fmt.Errorf("saml: stored signing key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: sk.Key})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sk.Cert})
	return parseKeySet(keyPEM, certPEM)
}
