package config

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// samlFiles writes a key, a certificate and an SP metadata file.
func samlFiles(t *testing.T) (keyFile, certFile, mdFile string) {
	t.Helper()
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("idp.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
		write("idp.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		write("sp.xml", []byte("<md:EntityDescriptor/>"))
}

func TestSAMLValidateRules(t *testing.T) {
	keyFile, certFile, mdFile := samlFiles(t)
	enabled := func(s *SAML) {
		s.Enabled = true
		s.Scope = "example.ac.jp"
		s.Signing = SAMLSigning{KeyFile: keyFile, CertFile: certFile}
	}
	sp := func(s *SAML, c SAMLServiceProvider) {
		if c.EntityID == "" {
			c.EntityID = "https://sp.example.ac.jp/shibboleth"
		}
		if c.MetadataFile == "" && c.MetadataURL == "" {
			c.MetadataFile = mdFile
		}
		s.ServiceProviders = append(s.ServiceProviders, c)
	}
	fed := func(s *SAML, f SAMLFederation) {
		if f.Name == "" {
			f.Name = "gakunin"
		}
		if f.MetadataFile == "" && f.MetadataURL == "" {
			f.MetadataURL = "https://metadata.example.jp/federation.xml"
		}
		if f.SigningCertFile == "" {
			f.SigningCertFile = certFile
		}
		s.Federations = append(s.Federations, f)
	}
	tests := []struct {
		name     string
		mutate   func(*SAML)
		wantPath string // "" = valid
		wantMsg  string
	}{
		{"defaults (disabled)", func(*SAML) {}, "", ""},
		{"disabled section may name files not there yet", func(s *SAML) {
			s.Signing = SAMLSigning{KeyFile: "/nonexistent/key", CertFile: "/nonexistent/crt"}
			sp(s, SAMLServiceProvider{MetadataFile: "/nonexistent/md.xml"})
		}, "", ""},
		{"enabled with files and an SP", func(s *SAML) {
			enabled(s)
			sp(s, SAMLServiceProvider{Attributes: []string{"mail", "jaDisplayName"}, NameIDFormat: NameIDTransient,
				Encryption: SAMLEncryptionRequired, EncryptionCipher: CipherAES128CBC, RequireMFA: true})
		}, "", ""},
		{"enabled with a generated key", func(s *SAML) {
			enabled(s)
			s.Signing = SAMLSigning{Generate: true}
		}, "", ""},
		{"URN entity ID", func(s *SAML) { s.EntityID = "urn:mace:example.ac.jp:idp" }, "", ""},
		{"metadata URL", func(s *SAML) {
			enabled(s)
			sp(s, SAMLServiceProvider{MetadataURL: "https://md.example.ac.jp/sp.xml", MetadataRefresh: 6 * time.Hour})
		}, "", ""},
		{"http metadata URL on loopback (tests)", func(s *SAML) {
			sp(s, SAMLServiceProvider{MetadataURL: "http://127.0.0.1:8081/sp.xml"})
		}, "", ""},

		{"relative entity ID", func(s *SAML) { s.EntityID = "idp" }, "saml.entity_id", "absolute URI"},
		{"entity ID without host", func(s *SAML) { s.EntityID = "https:///idp" }, "saml.entity_id", "host"},
		{"enabled without key", func(s *SAML) { enabled(s); s.Signing.KeyFile = "" }, "saml.signing.key_file", "required"},
		{"unreadable certificate", func(s *SAML) { enabled(s); s.Signing.CertFile = "/nonexistent/crt" }, "saml.signing.cert_file", "cannot be read"},
		{"certificate file holds the key", func(s *SAML) { enabled(s); s.Signing.CertFile = keyFile }, "saml.signing.cert_file", "no PEM CERTIFICATE"},
		{"generate and files", func(s *SAML) { enabled(s); s.Signing.Generate = true }, "saml.signing.generate", "cannot be combined"},
		{"bad extra certificate", func(s *SAML) { enabled(s); s.Signing.ExtraCertFiles = []string{mdFile} }, "saml.signing.extra_cert_files[0]", "no PEM"},
		{"enabled without scope", func(s *SAML) { enabled(s); s.Scope = "" }, "saml.attributes[0].scoped", "saml.scope"},
		{"upper-case scope", func(s *SAML) { s.Scope = "Example.ac.jp" }, "saml.scope", "lower-case"},
		{"short persistent ID secret", func(s *SAML) { s.PersistentIDSecret = SecretValue("short") }, "saml.persistent_id_secret", "at least 32"},
		{"no assertion lifetime", func(s *SAML) { s.AssertionLifetime = 0 }, "saml.assertion_lifetime", "greater than 0"},
		{"skew too large", func(s *SAML) { s.ClockSkew = time.Hour }, "saml.clock_skew", "at most 15m"},
		{"tiny request limit", func(s *SAML) { s.MaxRequestBytes = 10 }, "saml.max_request_bytes", "between"},
		{"huge inflate limit", func(s *SAML) { s.MaxInflatedBytes = 100 << 20 }, "saml.max_inflated_bytes", "between"},
		{"refresh too often", func(s *SAML) { s.MetadataRefresh = time.Second }, "saml.metadata_refresh", "between 1m and 168h"},
		{"attribute without name", func(s *SAML) { s.Attributes[3].Name = "" }, "saml.attributes[3].name", "required"},
		{"attribute twice", func(s *SAML) { s.Attributes[4].Name = "sn" }, "saml.attributes[7].name", "repeats attributes[4]"},
		{"attribute OID not urn:oid", func(s *SAML) { s.Attributes[0].OID = "eduPersonPrincipalName" }, "saml.attributes[0].oid", "urn:oid:"},
		{"attribute from userPassword", func(s *SAML) { s.Attributes[5].LDAP = "userPassword" }, "saml.attributes[5].ldap", "never released"},
		{"attribute from a bad LDAP name", func(s *SAML) { s.Attributes[5].LDAP = "display name" }, "saml.attributes[5].ldap", "not an LDAP attribute"},
		{"SP without metadata", func(s *SAML) {
			s.ServiceProviders = []SAMLServiceProvider{{EntityID: "https://sp.example.ac.jp/sp"}}
		}, "saml.service_providers[0]", "needs metadata_file or metadata_url"},
		{"URL with a backing file that does not exist yet", func(s *SAML) {
			enabled(s)
			sp(s, SAMLServiceProvider{MetadataFile: "/nonexistent/sp.xml", MetadataURL: "https://md.example.ac.jp/sp.xml"})
		}, "", ""},
		{"SP metadata from a federation", func(s *SAML) {
			enabled(s)
			fed(s, SAMLFederation{})
			s.ServiceProviders = []SAMLServiceProvider{{EntityID: "https://sp.example.ac.jp/sp", RequireMFA: true}}
		}, "", ""},
		{"federation from a file", func(s *SAML) {
			enabled(s)
			fed(s, SAMLFederation{MetadataURL: "", MetadataFile: mdFile, RequireValidUntil: true, MaxValidity: 720 * time.Hour})
		}, "", ""},
		{"federation without a name", func(s *SAML) { fed(s, SAMLFederation{Name: "-"}); s.Federations[0].Name = "" }, "saml.federations[0].name", "required"},
		{"federation name with spaces", func(s *SAML) { fed(s, SAMLFederation{Name: "Gaku Nin"}) }, "saml.federations[0].name", "letters"},
		{"federation twice", func(s *SAML) { fed(s, SAMLFederation{}); fed(s, SAMLFederation{}) }, "saml.federations[1].name", "repeats"},
		{"federation without a source", func(s *SAML) {
			fed(s, SAMLFederation{})
			s.Federations[0].MetadataURL = ""
		}, "saml.federations[0]", "needs metadata_url or metadata_file"},
		{"federation file missing", func(s *SAML) {
			enabled(s)
			fed(s, SAMLFederation{MetadataFile: "/nonexistent/fed.xml"})
			s.Federations[0].MetadataURL = ""
		}, "saml.federations[0].metadata_file", "cannot be read"},
		{"federation without a signing certificate", func(s *SAML) {
			fed(s, SAMLFederation{})
			s.Federations[0].SigningCertFile = ""
		}, "saml.federations[0].signing_cert_file", "required"},
		{"federation signing certificate not a certificate", func(s *SAML) {
			enabled(s)
			fed(s, SAMLFederation{SigningCertFile: mdFile})
		}, "saml.federations[0].signing_cert_file", "no PEM"},
		{"federation refresh too often", func(s *SAML) { fed(s, SAMLFederation{Refresh: time.Second}) }, "saml.federations[0].refresh", "between"},
		{"federation max validity negative", func(s *SAML) { fed(s, SAMLFederation{MaxValidity: -time.Hour}) }, "saml.federations[0].max_validity", "between"},
		{"metadata size limit too small", func(s *SAML) { s.MaxMetadataBytes = 1000 }, "saml.max_metadata_bytes", "between"},
		{"computed attributes without an LDAP source", func(s *SAML) {
			enabled(s)
			s.Attributes = []SAMLAttribute{
				{Name: "subject-id", OID: SubjectIDName, Computed: ComputedSubjectID},
				{Name: "pairwise-id", OID: PairwiseIDName, Computed: ComputedPairwiseID},
				{Name: "eduPersonTargetedID", OID: "urn:oid:1.3.6.1.4.1.5923.1.1.1.10", Computed: ComputedTargetedID},
			}
		}, "", ""},
		{"unknown computed attribute", func(s *SAML) {
			s.Attributes = append(s.Attributes, SAMLAttribute{Name: "x", OID: "urn:oid:1.2.3", Computed: "uuid"})
		}, "saml.attributes[16].computed", "one of"},
		{"computed attribute with a wrong name", func(s *SAML) {
			s.Attributes = append(s.Attributes, SAMLAttribute{Name: "x", OID: "urn:oid:1.2.3", Computed: ComputedPairwiseID})
		}, "saml.attributes[16].oid", PairwiseIDName},
		{"computed attribute with an LDAP source", func(s *SAML) {
			s.Attributes = append(s.Attributes, SAMLAttribute{Name: "x", OID: SubjectIDName, Computed: ComputedSubjectID, LDAP: "uid"})
		}, "saml.attributes[16].ldap", "computed"},
		{"subject-id without scope", func(s *SAML) {
			enabled(s)
			s.Scope = ""
			s.Attributes = []SAMLAttribute{{Name: "subject-id", OID: SubjectIDName, Computed: ComputedSubjectID}}
		}, "saml.attributes[0].computed", "saml.scope"},
		{"release rule with an unknown attribute", func(s *SAML) {
			s.Release.EntityCategories[0].Attributes = []string{"mail", "passwd"}
		}, "saml.release.entity_categories[0].attributes[1]", "not defined"},
		{"release rule without match", func(s *SAML) {
			s.Release.RegistrationAuthorities = []SAMLReleaseRule{{Mode: ReleaseRequested}}
		}, "saml.release.registration_authorities[0].match", "required"},
		{"release rule mode", func(s *SAML) { s.Release.Default.Mode = "all" }, "saml.release.default.mode", "one of"},
		{"release default with match", func(s *SAML) { s.Release.Default.Match = "https://x.example" }, "saml.release.default.match", "not used"},
		{"metadata URL not a URL", func(s *SAML) { s.Metadata.InformationURL.EN = "javascript:x" }, "saml.metadata.information_url.en", "absolute"},
		{"metadata organization half set", func(s *SAML) { s.Metadata.Organization.Name = Localized{JA: "大学", EN: "Univ"} }, "saml.metadata.organization.url.ja", "required"},
		{"metadata logo without size", func(s *SAML) { s.Metadata.Logo.URL = "https://idp.example.ac.jp/logo.png" }, "saml.metadata.logo", "width"},
		{"metadata contact type", func(s *SAML) {
			s.Metadata.Contacts = []SAMLContact{{Type: "abuse", Email: "a@example.ac.jp"}}
		}, "saml.metadata.contacts[0].type", "one of"},
		{"metadata contact address", func(s *SAML) {
			s.Metadata.Contacts = []SAMLContact{{Type: ContactSecurity, Email: "CSIRT <a@example.ac.jp>"}}
		}, "saml.metadata.contacts[0].email", "bare address"},
		{"metadata valid_for too short", func(s *SAML) { s.Metadata.ValidFor = time.Minute }, "saml.metadata.valid_for", "between"},
		{"signed metadata without validity", func(s *SAML) { s.MetadataSigning = SAMLMetadataSigning{Enabled: true} }, "saml.metadata_signing.valid_for", "greater than 0"},
		{"metadata encryption certificate unreadable", func(s *SAML) {
			enabled(s)
			s.Metadata.EncryptionCertFile = "/nonexistent/enc.crt"
		}, "saml.metadata.encryption_cert_file", "cannot be read"},
		{"SP metadata file missing", func(s *SAML) {
			enabled(s)
			sp(s, SAMLServiceProvider{MetadataFile: "/nonexistent/md.xml"})
		}, "saml.service_providers[0].metadata_file", "cannot be read"},
		{"plain http metadata URL", func(s *SAML) {
			sp(s, SAMLServiceProvider{MetadataURL: "http://md.example.ac.jp/sp.xml"})
		}, "saml.service_providers[0].metadata_url", "https://"},
		{"javascript metadata URL", func(s *SAML) {
			sp(s, SAMLServiceProvider{MetadataURL: "javascript:alert(1)"})
		}, "saml.service_providers[0].metadata_url", "https://"},
		{"SP entity ID twice", func(s *SAML) {
			sp(s, SAMLServiceProvider{})
			sp(s, SAMLServiceProvider{})
		}, "saml.service_providers[1].entity_id", "repeats service_providers[0]"},
		{"SP releases an unknown attribute", func(s *SAML) {
			sp(s, SAMLServiceProvider{Attributes: []string{"mail", "password"}})
		}, "saml.service_providers[0].attributes[1]", "not defined"},
		{"SP NameID format", func(s *SAML) { sp(s, SAMLServiceProvider{NameIDFormat: "x509"}) }, "saml.service_providers[0].name_id_format", "one of"},
		{"SP encryption", func(s *SAML) { sp(s, SAMLServiceProvider{Encryption: "yes"}) }, "saml.service_providers[0].encryption", "one of"},
		{"SP cipher", func(s *SAML) { sp(s, SAMLServiceProvider{EncryptionCipher: "des"}) }, "saml.service_providers[0].encryption_cipher", "one of"},
		{"SP refresh too often", func(s *SAML) {
			sp(s, SAMLServiceProvider{MetadataRefresh: time.Second})
		}, "saml.service_providers[0].metadata_refresh", "between"},
		{"SP name on two lines", func(s *SAML) { sp(s, SAMLServiceProvider{Name: "a\nb"}) }, "saml.service_providers[0].name", "single line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c.SAML)
			expectValidation(t, c.Validate(), tt.wantPath, tt.wantMsg, false)
		})
	}
}

func TestParseSAMLSection(t *testing.T) {
	_, _, mdFile := samlFiles(t)
	cfg, err := Parse([]byte(requiredYAML + `
saml:
  entity_id: "https://idp.example.ac.jp/idp/shibboleth"
  scope: example.ac.jp
  assertion_lifetime: 2m
  attributes:
    - {name: eduPersonPrincipalName, oid: "urn:oid:1.3.6.1.4.1.5923.1.1.1.6", ldap: uid, scoped: true}
    - {name: mail, oid: "urn:oid:0.9.2342.19200300.100.1.3", ldap: mail}
  service_providers:
    - entity_id: "https://sp.example.ac.jp/shibboleth"
      name: "Learning System"
      metadata_file: "` + mdFile + `"
      attributes: [eduPersonPrincipalName, mail]
      name_id_format: transient
      require_mfa: true
      encryption: "off"
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	s := cfg.SAML
	if s.EntityIDFor("https://x") != "https://idp.example.ac.jp/idp/shibboleth" || s.AssertionLifetime != 2*time.Minute ||
		s.RequestLifetime != 5*time.Minute {
		t.Errorf("saml = %+v", s)
	}
	want := []SAMLAttribute{
		{Name: "eduPersonPrincipalName", OID: "urn:oid:1.3.6.1.4.1.5923.1.1.1.6", LDAP: "uid", Scoped: true},
		{Name: "mail", OID: "urn:oid:0.9.2342.19200300.100.1.3", LDAP: "mail"},
	}
	if !reflect.DeepEqual(s.Attributes, want) {
		t.Errorf("attributes replace the defaults: got %+v", s.Attributes)
	}
	got := s.ServiceProviders[0]
	if got.Name != "Learning System" || got.NameIDFormatOrDefault() != NameIDTransient || !got.RequireMFA ||
		got.EncryptionOrDefault() != SAMLEncryptionOff || got.Refresh(time.Hour) != time.Hour {
		t.Errorf("sp = %+v", got)
	}
	if _, err := Parse([]byte(requiredYAML + "saml:\n  service_providers:\n    - entity_id: x\n      metadata_fle: y\n")); findFieldError(t, err, "saml.service_providers[0].metadata_fle") == nil {
		t.Errorf("misspelt SP key accepted: %v", err)
	}
}

func TestSAMLDefaults(t *testing.T) {
	s := Default().SAML
	if s.EntityIDFor("https://idp.example.ac.jp") != "https://idp.example.ac.jp/saml/metadata" {
		t.Errorf("default entity ID %q", s.EntityIDFor("https://idp.example.ac.jp"))
	}
	if s.DirectoryAttributes() != nil {
		t.Error("a disabled SAML section asks the directory for attributes")
	}
	s.Enabled = true
	got := s.DirectoryAttributes()
	want := []string{"uid", "eduPersonAffiliation", "eduPersonEntitlement", "mail", "displayName", "givenName", "sn",
		"displayName;lang-ja", "sn;lang-ja", "givenName;lang-ja", "o;lang-ja", "ou;lang-ja"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("directory attributes %q, want %q (each once)", got, want)
	}
	names := map[string]bool{}
	for _, a := range s.Attributes {
		names[a.Name] = true
	}
	for _, n := range []string{"eduPersonPrincipalName", "eduPersonScopedAffiliation", "eduPersonAffiliation", "eduPersonEntitlement",
		"mail", "displayName", "givenName", "sn", "jaDisplayName", "jasn", "jaGivenName", "jao", "jaou"} {
		if !names[n] {
			t.Errorf("default mapping lacks %s", n)
		}
	}
}

func TestSAMLWarnings(t *testing.T) {
	c := validConfig()
	// Settled campus settings (see TestWarnings), so only SAML's show.
	c.Server.TrustedProxies = []string{"10.0.0.0/24"}
	c.MFA.Email.BlockedDomains = []string{"example.ac.jp"}
	c.Branding.ForgotPasswordURL = "https://www.example.ac.jp/password/"
	c.Branding.HelpURL = "https://www.example.ac.jp/help/"
	c.SAML.Signing.Generate = true
	c.SAML.ServiceProviders = []SAMLServiceProvider{{EntityID: "https://sp.example.ac.jp/sp", MetadataURL: "http://127.0.0.1:8081/md"}}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("disabled SAML warns: %q", w)
	}
	c.SAML.Enabled = true
	w := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"saml.signing.generate", "saml.service_providers[0].metadata_url"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %s", w, want)
		}
	}
}
