package samlprovider

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
)

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadKeySet(t *testing.T) {
	dir := t.TempDir()
	key0, cert0 := unitKey(t, 0)
	_, cert1 := unitKey(t, 1)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key0)
	keyFile := writePEM(t, dir, "key.pem", "PRIVATE KEY", pkcs8)
	pkcs1File := writePEM(t, dir, "key1.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key0))
	certFile := writePEM(t, dir, "cert.pem", "CERTIFICATE", cert0.Raw)
	otherCert := writePEM(t, dir, "other.pem", "CERTIFICATE", cert1.Raw)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	smallFile := writePEM(t, dir, "small.pem", "PRIVATE KEY", smallDER)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecFile := writePEM(t, dir, "ec.pem", "PRIVATE KEY", ecDER)

	cases := []struct {
		name      string
		signing   config.SAMLSigning
		wantErr   string
		published int
	}{
		{"PKCS#8", config.SAMLSigning{KeyFile: keyFile, CertFile: certFile}, "", 1},
		{"PKCS#1", config.SAMLSigning{KeyFile: pkcs1File, CertFile: certFile}, "", 1},
		{"rollover: extra certificate", config.SAMLSigning{KeyFile: keyFile, CertFile: certFile, ExtraCertFiles: []string{otherCert}}, "", 2},
		{"extra equal to the signing one is listed once", config.SAMLSigning{KeyFile: keyFile, CertFile: certFile, ExtraCertFiles: []string{certFile}}, "", 1},
		{"certificate of another key", config.SAMLSigning{KeyFile: keyFile, CertFile: otherCert}, "does not belong", 0},
		{"RSA key too small", config.SAMLSigning{KeyFile: smallFile, CertFile: certFile}, "at least 2048", 0},
		{"not RSA", config.SAMLSigning{KeyFile: ecFile, CertFile: certFile}, "RSA key is required", 0},
		{"key file is a certificate", config.SAMLSigning{KeyFile: certFile, CertFile: certFile}, "no PEM private key", 0},
		{"missing file", config.SAMLSigning{KeyFile: filepath.Join(dir, "nope"), CertFile: certFile}, "no such file", 0},
		{"missing extra file", config.SAMLSigning{KeyFile: keyFile, CertFile: certFile, ExtraCertFiles: []string{filepath.Join(dir, "nope")}}, "no such file", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := LoadKeySet(tc.signing)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ks.Published) != tc.published || !ks.Published[0].Equal(ks.Certificate) {
				t.Errorf("published %d certificates (signing first: %v), want %d", len(ks.Published), ks.Published[0].Equal(ks.Certificate), tc.published)
			}
		})
	}
}

// TestGeneratedKeySet: the development key is made once and then read
// from the store, so every start (and every process) signs with it.
func TestGeneratedKeySet(t *testing.T) {
	db := openStore(t)
	ctx := context.Background()
	now := time.Now()
	// Two processes starting at once on one store settle on one key.
	var (
		wg   sync.WaitGroup
		sets [2]*KeySet
		errs [2]error
	)
	for i := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sets[i], errs[i] = GeneratedKeySet(ctx, db, "https://idp.example/saml/metadata", now)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	first := sets[0]
	if !first.Certificate.Equal(sets[1].Certificate) {
		t.Error("processes starting together use different keys")
	}
	again, err := GeneratedKeySet(ctx, db, "https://idp.example/saml/metadata", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !first.Certificate.Equal(again.Certificate) {
		t.Error("a second start generated another key")
	}
	if first.Certificate.PublicKey.(*rsa.PublicKey).N.BitLen() < 3072 {
		t.Error("generated key is weaker than 3072 bits")
	}
	if !first.Certificate.NotAfter.After(now.Add(365 * 24 * time.Hour)) {
		t.Errorf("generated certificate expires at %s", first.Certificate.NotAfter)
	}
	other, err := GeneratedKeySet(ctx, openStore(t), "https://idp.example/saml/metadata", now)
	if err != nil {
		t.Fatal(err)
	}
	if other.Certificate.Equal(first.Certificate) {
		t.Error("two stores got the same key")
	}
}
