package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
