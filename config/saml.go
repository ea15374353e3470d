package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Values accepted by the SAML settings.
const (
	NameIDPersistent = "persistent"
	NameIDTransient  = "transient"
	NameIDEmail      = "email"

	// SAMLEncryptionAuto encrypts assertions when the SP's metadata has an
	// encryption key; it is what an empty setting means.
	SAMLEncryptionAuto = "auto"
	// SAMLEncryptionOff never encrypts (the SP reads plain assertions).
	SAMLEncryptionOff = "off"
	// SAMLEncryptionRequired refuses SP metadata without an encryption key.
	SAMLEncryptionRequired = "required"

	CipherAES256GCM = "aes256-gcm"
	CipherAES128GCM = "aes128-gcm"
	CipherAES256CBC = "aes256-cbc"
	CipherAES128CBC = "aes128-cbc"
)

// SAML is the SAML 2.0 identity provider.
type SAML struct {
	Enabled bool `yaml:"enabled"`
	// EntityID names the IdP to SPs. Empty means server.public_url +
	// "/saml/metadata". Changing it breaks every registered SP.
	EntityID string      `yaml:"entity_id"`
	Signing  SAMLSigning `yaml:"signing"`
	// Scope is appended ("@scope") to the values of scoped attributes and
	// published in the metadata as shibmd:Scope.
	Scope string `yaml:"scope"`
	// PersistentIDSecret keys the persistent NameIDs. Empty means a key
	// derived from security.secret_key. Changing it changes every
	// persistent NameID.
	PersistentIDSecret Secret `yaml:"persistent_id_secret"`

	AssertionLifetime time.Duration `yaml:"assertion_lifetime"`
	// RequestLifetime is how old an AuthnRequest (its IssueInstant) may be.
	RequestLifetime time.Duration `yaml:"request_lifetime"`
	// ClockSkew is the tolerated difference between our clock and an SP's.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// MaxRequestBytes bounds an encoded request as received;
	// MaxInflatedBytes bounds it after base64 and DEFLATE decoding.
	MaxRequestBytes  int `yaml:"max_request_bytes"`
	MaxInflatedBytes int `yaml:"max_inflated_bytes"`
	// MetadataRefresh is how often SP metadata is re-read (an SP may set
	// its own).
	MetadataRefresh time.Duration `yaml:"metadata_refresh"`
	// MaxMetadataBytes bounds one metadata document: an SP's, or a
	// federation's aggregate.
	MaxMetadataBytes int64 `yaml:"max_metadata_bytes"`

	// Metadata is what the IdP's metadata says about it; MetadataSigning
	// optionally signs it.
	Metadata        SAMLMetadata        `yaml:"metadata"`
	MetadataSigning SAMLMetadataSigning `yaml:"metadata_signing"`

	// Attributes maps directory attributes to SAML attributes. A list in
	// the file replaces the default list as a whole.
	Attributes       []SAMLAttribute       `yaml:"attributes"`
	ServiceProviders []SAMLServiceProvider `yaml:"service_providers"`
	// Federations are signed metadata aggregates whose SPs are all
	// trusted; an entry in ServiceProviders overrides one of their SPs.
	Federations []SAMLFederation `yaml:"federations"`
	// Release decides the attributes of SPs without their own list.
	Release SAMLRelease `yaml:"release"`
}

// SAMLSigning is the key that signs responses and assertions.
type SAMLSigning struct {
	// KeyFile is a PEM private key (RSA, at least 2048 bits); CertFile its
	// PEM certificate.
	KeyFile  string `yaml:"key_file"`
	CertFile string `yaml:"cert_file"`
	// ExtraCertFiles are further certificates published in the metadata:
	// the next key before a rollover, the previous one after it.
	ExtraCertFiles []string `yaml:"extra_cert_files"`
	// Generate creates a key and certificate on first start and keeps them
	// in the store, instead of KeyFile and CertFile. For development.
	Generate bool `yaml:"generate"`
}

// SAMLAttribute is one attribute the IdP can release.
type SAMLAttribute struct {
	// Name is the friendly name, used in service_providers[].attributes.
	Name string `yaml:"name"`
	// OID is the SAML attribute name, e.g. "urn:oid:2.5.4.42".
	OID string `yaml:"oid"`
	// LDAP is the directory attribute the values come from.
	LDAP string `yaml:"ldap"`
	// Scoped appends "@" + saml.scope to values that have no scope yet.
	Scoped bool `yaml:"scoped"`
	// Computed, instead of LDAP, makes the IdP compute the value:
	// subject-id, pairwise-id or eduPersonTargetedID.
	Computed string `yaml:"computed"`
}

// SAMLServiceProvider is one registered SP.
type SAMLServiceProvider struct {
	EntityID string `yaml:"entity_id"`
	// Name is shown on the login page.
	Name string `yaml:"name"`
	// MetadataURL is fetched on schedule; MetadataFile is read instead when
	// no URL is given, or keeps a copy of each good download when one is.
	// Neither: the SP's metadata comes from saml.federations and this
	// entry only overrides settings.
	MetadataFile string `yaml:"metadata_file"`
	MetadataURL  string `yaml:"metadata_url"`
	// MetadataSigningCertFile, when set, is the PEM certificate whose
	// signature the metadata must carry (e.g. the federation's).
	MetadataSigningCertFile string `yaml:"metadata_signing_cert_file"`
	// MetadataRefresh overrides saml.metadata_refresh for this SP.
	MetadataRefresh time.Duration `yaml:"metadata_refresh"`
	// Attributes lists the names (saml.attributes[].name) released to it,
	// overriding saml.release; empty means saml.release decides.
	Attributes []string `yaml:"attributes"`
	// NameIDFormat is persistent (the default), transient or email.
	NameIDFormat string `yaml:"name_id_format"`
	// RequireMFA demands a second factor for every login to this SP.
	RequireMFA bool `yaml:"require_mfa"`
	// Encryption is auto (the default), off or required.
	Encryption string `yaml:"encryption"`
	// EncryptionCipher forces a block cipher; empty means the first one
	// the SP's metadata lists that we support, else aes256-gcm.
	EncryptionCipher string `yaml:"encryption_cipher"`
	// RequireSignedRequests refuses unsigned AuthnRequests even if the
	// metadata does not say AuthnRequestsSigned="true".
	RequireSignedRequests bool `yaml:"require_signed_requests"`
	// Consent is none, once or always; empty means once for an SP from a
	// federation's metadata and none for one with its own metadata
	// (ConsentModeOrDefault).
	Consent string `yaml:"consent"`
	// TermsOfUse replaces consent.terms_of_use on this SP's consent page.
	TermsOfUse Localized `yaml:"terms_of_use"`
}

// Refresh returns how often this SP's metadata is re-read.
func (sp SAMLServiceProvider) Refresh(global time.Duration) time.Duration {
	if sp.MetadataRefresh > 0 {
		return sp.MetadataRefresh
	}
	return global
}

// NameIDFormatOrDefault returns the configured NameID format, persistent
// when unset.
func (sp SAMLServiceProvider) NameIDFormatOrDefault() string {
	if sp.NameIDFormat == "" {
		return NameIDPersistent
	}
	return sp.NameIDFormat
}

// EncryptionOrDefault returns the encryption setting, auto when unset.
func (sp SAMLServiceProvider) EncryptionOrDefault() string {
	if sp.Encryption == "" {
		return SAMLEncryptionAuto
	}
	return sp.Encryption
}

// EntityIDFor returns the configured entity ID or the default derived from
// the public URL.
func (s SAML) EntityIDFor(publicURL string) string {
	if s.EntityID != "" {
		return s.EntityID
	}
	return strings.TrimSuffix(publicURL, "/") + "/saml/metadata"
}

// DirectoryAttributes lists the directory attributes the attribute mapping
// reads, for the directory client's extra attribute list. It is empty when
// SAML is disabled.
func (s SAML) DirectoryAttributes() []string {
	if !s.Enabled {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, a := range s.Attributes {
		key := strings.ToLower(a.LDAP)
		if a.LDAP == "" || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, a.LDAP)
	}
	return out
}

// Object identifiers of the attributes in the default mapping.
const (
	oidEduPerson = "urn:oid:1.3.6.1.4.1.5923.1.1.1."
	oidGakuNin   = "urn:oid:1.3.6.1.4.1.32264.1.1."
)

// DefaultSAMLAttributes is the default attribute mapping: eduPerson,
// inetOrgPerson and the GakuNin Japanese attributes, read from the usual
// directory attributes (Japanese forms from the ;lang-ja option).
func DefaultSAMLAttributes() []SAMLAttribute {
	return []SAMLAttribute{
		{Name: "eduPersonPrincipalName", OID: oidEduPerson + "6", LDAP: "uid", Scoped: true},
		{Name: "eduPersonScopedAffiliation", OID: oidEduPerson + "9", LDAP: "eduPersonAffiliation", Scoped: true},
		{Name: "eduPersonAffiliation", OID: oidEduPerson + "1", LDAP: "eduPersonAffiliation"},
		{Name: "eduPersonEntitlement", OID: oidEduPerson + "7", LDAP: "eduPersonEntitlement"},
		{Name: "mail", OID: "urn:oid:0.9.2342.19200300.100.1.3", LDAP: "mail"},
		{Name: "displayName", OID: "urn:oid:2.16.840.1.113730.3.1.241", LDAP: "displayName"},
		{Name: "givenName", OID: "urn:oid:2.5.4.42", LDAP: "givenName"},
		{Name: "sn", OID: "urn:oid:2.5.4.4", LDAP: "sn"},
		{Name: "jaDisplayName", OID: oidGakuNin + "3", LDAP: "displayName;lang-ja"},
		{Name: "jasn", OID: oidGakuNin + "1", LDAP: "sn;lang-ja"},
		{Name: "jaGivenName", OID: oidGakuNin + "2", LDAP: "givenName;lang-ja"},
		{Name: "jao", OID: oidGakuNin + "4", LDAP: "o;lang-ja"},
		{Name: "jaou", OID: oidGakuNin + "5", LDAP: "ou;lang-ja"},
		// Computed, not read from the directory.
		{Name: "eduPersonTargetedID", OID: oidEduPerson + "10", Computed: ComputedTargetedID},
		{Name: "subject-id", OID: SubjectIDName, Computed: ComputedSubjectID},
		{Name: "pairwise-id", OID: PairwiseIDName, Computed: ComputedPairwiseID},
	}
}

func defaultSAML() SAML {
	return SAML{
		AssertionLifetime: 5 * time.Minute,
		RequestLifetime:   5 * time.Minute,
		ClockSkew:         3 * time.Minute,
		MaxRequestBytes:   64 << 10,
		MaxInflatedBytes:  256 << 10,
		MetadataRefresh:   time.Hour,
		MaxMetadataBytes:  DefaultMaxMetadataBytes,
		Signing:           SAMLSigning{ExtraCertFiles: []string{}},
		Metadata:          defaultSAMLMetadata(),
		MetadataSigning:   SAMLMetadataSigning{ValidFor: 7 * 24 * time.Hour},
		Attributes:        DefaultSAMLAttributes(),
		ServiceProviders:  []SAMLServiceProvider{},
		Federations:       []SAMLFederation{},
		Release:           defaultRelease(),
	}
}

// Bounds of the SAML settings.
const (
	minSAMLBytes = 1 << 10
	maxSAMLBytes = 10 << 20
)

var oidURN = regexp.MustCompile(`^urn:oid:[0-9]+(\.[0-9]+)+$`)

// validate checks the SAML section. Files (keys, certificates, metadata)
// are read only when SAML is enabled, so a disabled section may name files
// that do not exist yet.
func (s SAML) validate(v *validator, p string) {
	if s.EntityID != "" {
		validateEntityID(v, p+".entity_id", s.EntityID)
	}
	s.Signing.validate(v, p+".signing", s.Enabled)
	if s.Scope != "" && (s.Scope != strings.ToLower(s.Scope) || !isHostname(s.Scope)) {
		v.add(p+".scope", "must be a lower-case domain name such as example.ac.jp (got %q)", s.Scope)
	}
	if v.secret(p+".persistent_id_secret", s.PersistentIDSecret, false) && len(s.PersistentIDSecret.Value()) < MinSecretKeyBytes {
		v.add(p+".persistent_id_secret", "must be at least %d bytes (got %d)", MinSecretKeyBytes, len(s.PersistentIDSecret.Value()))
	}
	v.duration(p+".assertion_lifetime", s.AssertionLifetime, time.Hour)
	v.duration(p+".request_lifetime", s.RequestLifetime, time.Hour)
	v.duration(p+".clock_skew", s.ClockSkew, 15*time.Minute)
	v.intRange(p+".max_request_bytes", s.MaxRequestBytes, minSAMLBytes, maxSAMLBytes)
	v.intRange(p+".max_inflated_bytes", s.MaxInflatedBytes, minSAMLBytes, maxSAMLBytes)
	if s.MetadataRefresh < time.Minute || s.MetadataRefresh > 7*24*time.Hour {
		v.add(p+".metadata_refresh", "must be between 1m and 168h (got %s)", formatDuration(s.MetadataRefresh))
	}

	names := map[string]int{}
	for i, a := range s.Attributes {
		path := fmt.Sprintf("%s.attributes[%d]", p, i)
		if v.required(path+".name", a.Name) {
			if first, dup := names[a.Name]; dup {
				v.add(path+".name", "repeats attributes[%d] (%q)", first, a.Name)
			} else {
				names[a.Name] = i
			}
		}
		if a.Computed != "" {
			a.validateComputed(v, path, s.Scope, s.Enabled)
			continue
		}
		if v.required(path+".oid", a.OID) && !oidURN.MatchString(a.OID) {
			v.add(path+".oid", "must be urn:oid: followed by a dotted object identifier (got %q)", a.OID)
		}
		v.attribute(path+".ldap", a.LDAP, true)
		if strings.EqualFold(strings.SplitN(a.LDAP, ";", 2)[0], "userPassword") {
			v.add(path+".ldap", "userPassword is never released")
		}
		if a.Scoped && s.Scope == "" && s.Enabled {
			v.add(path+".scoped", "needs saml.scope")
		}
	}

	entities := map[string]int{}
	for i, sp := range s.ServiceProviders {
		path := fmt.Sprintf("%s.service_providers[%d]", p, i)
		if v.required(path+".entity_id", sp.EntityID) {
			validateEntityID(v, path+".entity_id", sp.EntityID)
			if first, dup := entities[sp.EntityID]; dup {
				v.add(path+".entity_id", "repeats service_providers[%d] (%q)", first, sp.EntityID)
			} else {
				entities[sp.EntityID] = i
			}
		}
		sp.validate(v, path, names, s.Enabled, len(s.Federations) > 0)
	}
	v.int64Range(p+".max_metadata_bytes", s.MaxMetadataBytes, 64<<10, 1<<30)
	feds := map[string]int{}
	for i, f := range s.Federations {
		path := fmt.Sprintf("%s.federations[%d]", p, i)
		f.validate(v, path, s.Enabled)
		if first, dup := feds[f.Name]; dup && f.Name != "" {
			v.add(path+".name", "repeats federations[%d] (%q)", first, f.Name)
		} else {
			feds[f.Name] = i
		}
	}
	s.Release.validate(v, p+".release", names)
	s.Metadata.validate(v, p+".metadata", s.Enabled)
	s.MetadataSigning.validate(v, p+".metadata_signing")
}

// warnings lists SAML settings that are valid but meant for development.
func (s SAML) warnings() []string {
	var w []string
	if !s.Enabled {
		return nil
	}
	if s.Signing.Generate {
		w = append(w, "saml.signing.generate: the signing key is kept in the store; for development only")
	}
	for i, sp := range s.ServiceProviders {
		if strings.HasPrefix(sp.MetadataURL, "http://") && sp.MetadataSigningCertFile == "" {
			w = append(w, fmt.Sprintf("saml.service_providers[%d].metadata_url: plain http:// without a metadata signature can be altered in transit", i))
		}
	}
	return w
}

func (g SAMLSigning) validate(v *validator, p string, enabled bool) {
	if g.Generate {
		if g.KeyFile != "" || g.CertFile != "" {
			v.add(p+".generate", "cannot be combined with key_file and cert_file")
		}
	} else if enabled {
		if v.required(p+".key_file", g.KeyFile) {
			validatePEMFile(v, p+".key_file", g.KeyFile, "PRIVATE KEY")
		}
		if v.required(p+".cert_file", g.CertFile) {
			validatePEMFile(v, p+".cert_file", g.CertFile, "CERTIFICATE")
		}
	}
	if enabled {
		for i, f := range g.ExtraCertFiles {
			validatePEMFile(v, fmt.Sprintf("%s.extra_cert_files[%d]", p, i), f, "CERTIFICATE")
		}
	}
}

func (sp SAMLServiceProvider) validate(v *validator, p string, attributes map[string]int, enabled, federated bool) {
	validateConsentMode(v, p+".consent", sp.Consent)
	validateTerms(v, p+".terms_of_use", sp.TermsOfUse)
	switch {
	case sp.MetadataFile == "" && sp.MetadataURL == "":
		if !federated {
			v.add(p, "needs metadata_file or metadata_url (or saml.federations that list the SP)")
		}
	case sp.MetadataFile != "" && sp.MetadataURL == "" && enabled:
		if st, err := os.Stat(sp.MetadataFile); err != nil || st.IsDir() {
			v.add(p+".metadata_file", "cannot be read (%s)", sp.MetadataFile)
		}
	case sp.MetadataURL != "":
		u, err := url.Parse(sp.MetadataURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			v.add(p+".metadata_url", "must be an absolute https:// URL (got %q)", sp.MetadataURL)
		case u.Scheme == "http" && !isLoopbackHost(u.Hostname()) && sp.MetadataSigningCertFile == "":
			v.add(p+".metadata_url", "must be https://, or http:// with metadata_signing_cert_file set (got %q)", sp.MetadataURL)
		}
	}
	if sp.MetadataSigningCertFile != "" && enabled {
		validatePEMFile(v, p+".metadata_signing_cert_file", sp.MetadataSigningCertFile, "CERTIFICATE")
	}
	if sp.MetadataRefresh != 0 && (sp.MetadataRefresh < time.Minute || sp.MetadataRefresh > 7*24*time.Hour) {
		v.add(p+".metadata_refresh", "must be between 1m and 168h (got %s)", formatDuration(sp.MetadataRefresh))
	}
	if strings.ContainsAny(sp.Name, "\r\n") {
		v.add(p+".name", "must be a single line")
	}
	for i, name := range sp.Attributes {
		if _, ok := attributes[name]; !ok {
			v.add(fmt.Sprintf("%s.attributes[%d]", p, i), "%q is not defined in saml.attributes", name)
		}
	}
	if sp.NameIDFormat != "" {
		v.oneOf(p+".name_id_format", sp.NameIDFormat, NameIDPersistent, NameIDTransient, NameIDEmail)
	}
	if sp.Encryption != "" {
		v.oneOf(p+".encryption", sp.Encryption, SAMLEncryptionAuto, SAMLEncryptionOff, SAMLEncryptionRequired)
	}
	if sp.EncryptionCipher != "" {
		v.oneOf(p+".encryption_cipher", sp.EncryptionCipher, CipherAES256GCM, CipherAES128GCM, CipherAES256CBC, CipherAES128CBC)
	}
}

// validateEntityID accepts an absolute URI: an http(s) URL or a URN.
func validateEntityID(v *validator, path, id string) {
	u, err := url.Parse(id)
	switch {
	case len(id) > 1024:
		v.add(path, "must be at most 1024 characters")
	case err != nil || u.Scheme == "":
		v.add(path, "must be an absolute URI such as https://sp.example.ac.jp/shibboleth (got %q)", id)
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host == "":
		v.add(path, "must name a host (got %q)", id)
	case strings.ContainsAny(id, " \t\r\n"):
		v.add(path, "must not contain white space (got %q)", id)
	}
}

// validatePEMFile checks that file holds a PEM block whose type ends with
// kind ("CERTIFICATE", "PRIVATE KEY") and, for certificates, parses.
func validatePEMFile(v *validator, path, file, kind string) {
	data, err := os.ReadFile(file)
	if err != nil {
		v.add(path, "cannot be read: %v", err)
		return
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			v.add(path, "contains no PEM %s (%s)", kind, file)
			return
		}
		if !strings.HasSuffix(block.Type, kind) {
			continue
		}
		if kind == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				v.add(path, "holds a certificate that does not parse: %v", err)
			}
		}
		return
	}
}
