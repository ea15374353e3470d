package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevPublishesSAMLMetadata: `idp dev` runs the SAML IdP with a key it
// generated and kept in its store.
func TestDevPublishesSAMLMetadata(t *testing.T) {
	dev := startDev(t)
	base, stdout := dev.base, &dev.stdout
	defer dev.stop(t)
	if !strings.Contains(stdout.String(), base+"/saml/metadata") {
		t.Errorf("idp dev does not print the SAML metadata URL:\n%s", stdout.String())
	}
	resp, err := http.Get(base + "/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Everything a federation's registration asks for (saml.metadata).
	for _, want := range []string{`entityID="` + base + `/saml/metadata"`, "X509Certificate", "demo.example", base + "/saml/sso",
		`<mdui:DisplayName xml:lang="ja">デモ大学 認証システム</mdui:DisplayName>`, "<mdui:Description", "<mdui:InformationURL",
		"<mdui:PrivacyStatementURL", "<mdui:Logo", "<OrganizationName", `contactType="technical"`, `contactType="support"`,
		`remd:contactType="http://refeds.org/metadata/contactType/security"`, `errorURL="` + base + `/user/"`, `use="encryption"`} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("metadata (%d) lacks %q:\n%s", resp.StatusCode, want, body)
		}
	}
}

// TestCheckConfigAcceptsFederationSettings: check-config takes a
// federation and an SP whose metadata_file backs a metadata_url and does
// not exist before the first download, and the computed subject
// identifiers without an LDAP source.
func TestCheckConfigAcceptsFederationSettings(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	certFile := filepath.Join(dir, "federation.crt")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `
server: {public_url: "https://idp.example.ac.jp"}
ldap: {urls: ["ldaps://ldap.example.ac.jp"], user_base_dn: "ou=people,dc=example,dc=ac,dc=jp"}
security: {secret_key: "` + strings.Repeat("s", 40) + `"}
mail: {from: "idp@example.ac.jp", smtp: {host: "smtp.example.ac.jp"}}
saml:
  enabled: true
  scope: example.ac.jp
  signing: {generate: true}
  attributes:
    - {name: eduPersonPrincipalName, oid: "urn:oid:1.3.6.1.4.1.5923.1.1.1.6", ldap: uid, scoped: true}
    - {name: subject-id, oid: "urn:oasis:names:tc:SAML:attribute:subject-id", computed: subject-id}
    - {name: pairwise-id, oid: "urn:oasis:names:tc:SAML:attribute:pairwise-id", computed: pairwise-id}
    - {name: eduPersonTargetedID, oid: "urn:oid:1.3.6.1.4.1.5923.1.1.1.10", computed: eduPersonTargetedID}
  release:
    entity_categories: []
    default: {mode: requested, attributes: [eduPersonPrincipalName, subject-id, pairwise-id, eduPersonTargetedID]}
  federations:
    - name: gakunin
      metadata_url: "https://metadata.example.jp/federation.xml"
      metadata_file: "` + filepath.Join(dir, "federation.xml") + `"
      signing_cert_file: "` + certFile + `"
      require_valid_until: true
      max_validity: 720h
  service_providers:
    - entity_id: "https://sp.example.ac.jp/shibboleth"
      metadata_url: "https://sp.example.ac.jp/Shibboleth.sso/Metadata"
      metadata_file: "` + filepath.Join(dir, "sp.xml") + `"
    - entity_id: "https://fedsp.example.jp/shibboleth"
      require_mfa: true
`
	path := filepath.Join(dir, "idp.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check-config", "-config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("check-config exit %d:\n%s", code, stderr.String())
	}
}
