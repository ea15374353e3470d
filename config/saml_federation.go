package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Computed attributes: values the IdP makes itself instead of reading the
// directory.
const (
	// ComputedSubjectID is the OASIS subject-id: one value for every SP.
	ComputedSubjectID = "subject-id"
	// ComputedPairwiseID is the OASIS pairwise-id: a value per SP.
	ComputedPairwiseID = "pairwise-id"
	// ComputedTargetedID is eduPersonTargetedID: the persistent NameID as a
	// NameID element.
	ComputedTargetedID = "eduPersonTargetedID"

	// SAML names of the subject identifier attributes.
	SubjectIDName  = "urn:oasis:names:tc:SAML:attribute:subject-id"
	PairwiseIDName = "urn:oasis:names:tc:SAML:attribute:pairwise-id"
)

// Release modes of a release rule.
const (
	// ReleaseRequested releases the rule's attributes the SP lists as
	// RequestedAttribute in its metadata, and no others.
	ReleaseRequested = "requested"
	// ReleaseBundle releases all the rule's attributes whether requested
	// or not (the REFEDS R&S bundle).
	ReleaseBundle = "bundle"
)

// Entity categories of the default release policy.
const (
	CategoryResearchAndScholarship = "http://refeds.org/category/research-and-scholarship"
	CategoryCoCoV1                 = "http://www.geant.net/uri/dataprotection-code-of-conduct/v1"
	CategoryCoCoV2                 = "https://refeds.org/category/code-of-conduct/v2"
)

// Contact types of the metadata; security is the REFEDS SIRTFI contact.
const (
	ContactTechnical      = "technical"
	ContactSupport        = "support"
	ContactAdministrative = "administrative"
	ContactSecurity       = "security"
)

// DefaultMaxMetadataBytes bounds one metadata document or aggregate.
const DefaultMaxMetadataBytes = 100 << 20

// SAMLFederation is a federation's signed metadata aggregate: every SP in
// it is trusted without an entry of its own.
type SAMLFederation struct {
	// Name labels the federation in logs and metrics, e.g. "gakunin".
	Name string `yaml:"name"`
	// MetadataURL is fetched on schedule; MetadataFile is read instead when
	// no URL is given, or keeps a copy of each good download when one is.
	MetadataURL  string `yaml:"metadata_url"`
	MetadataFile string `yaml:"metadata_file"`
	// SigningCertFile is the PEM certificate of the federation's metadata
	// signing key. Required: an unsigned aggregate is never trusted.
	SigningCertFile string `yaml:"signing_cert_file"`
	// Refresh overrides saml.metadata_refresh.
	Refresh time.Duration `yaml:"refresh"`
	// RequireValidUntil refuses an aggregate without validUntil (a
	// replayed old copy would otherwise stay valid forever).
	RequireValidUntil bool `yaml:"require_valid_until"`
	// MaxValidity refuses an aggregate whose validUntil is further away;
	// 0 means no limit.
	MaxValidity time.Duration `yaml:"max_validity"`
}

// RefreshOr returns the federation's refresh interval or the global one.
func (f SAMLFederation) RefreshOr(global time.Duration) time.Duration {
	if f.Refresh > 0 {
		return f.Refresh
	}
	return global
}

// SAMLRelease decides which attributes go to SPs that have no attributes
// list of their own: what the SP requests in its metadata, intersected with
// the rules that match it.
type SAMLRelease struct {
	// EntityCategories apply to SPs carrying the category (match) in their
	// metadata's entity attributes.
	EntityCategories []SAMLReleaseRule `yaml:"entity_categories"`
	// RegistrationAuthorities apply to SPs registered by the authority
	// (match), as mdrpi:RegistrationInfo says.
	RegistrationAuthorities []SAMLReleaseRule `yaml:"registration_authorities"`
	// Default applies when no other rule matches; its match is unused.
	Default SAMLReleaseRule `yaml:"default"`
}

// SAMLReleaseRule is one declarative release rule.
type SAMLReleaseRule struct {
	Match string `yaml:"match"`
	// Mode is requested (only what the SP requests) or bundle (all of
	// Attributes).
	Mode string `yaml:"mode"`
	// Attributes are names from saml.attributes.
	Attributes []string `yaml:"attributes"`
}

// SAMLMetadata is what the IdP's own metadata says about it, for the
// federation's registration and the SPs' discovery pages.
type SAMLMetadata struct {
	DisplayName         Localized `yaml:"display_name"`
	Description         Localized `yaml:"description"`
	InformationURL      Localized `yaml:"information_url"`
	PrivacyStatementURL Localized `yaml:"privacy_statement_url"`
	Logo                SAMLLogo  `yaml:"logo"`

	Organization SAMLOrganization `yaml:"organization"`
	Contacts     []SAMLContact    `yaml:"contacts"`
	// ErrorURL is where SPs send users when a login fails at their end.
	ErrorURL string `yaml:"error_url"`
	// EncryptionCertFile publishes an encryption key (PEM certificate).
	EncryptionCertFile string `yaml:"encryption_cert_file"`
	// WantAuthnRequestsSigned tells SPs to sign their requests.
	WantAuthnRequestsSigned bool `yaml:"want_authn_requests_signed"`
	// ValidFor sets validUntil on the unsigned document; 0 means none.
	ValidFor time.Duration `yaml:"valid_for"`
}

// SAMLLogo is the mdui:Logo.
type SAMLLogo struct {
	URL    string `yaml:"url"`
	Width  int    `yaml:"width"`
	Height int    `yaml:"height"`
}

// SAMLOrganization is the md:Organization.
type SAMLOrganization struct {
	Name        Localized `yaml:"name"`
	DisplayName Localized `yaml:"display_name"`
	URL         Localized `yaml:"url"`
}

// SAMLContact is one md:ContactPerson.
type SAMLContact struct {
	// Type is technical, support, administrative or security (SIRTFI).
	Type  string `yaml:"type"`
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

// SAMLMetadataSigning signs the served metadata with the IdP's key, for
// campuses that hand it out themselves rather than through a federation.
type SAMLMetadataSigning struct {
	Enabled bool `yaml:"enabled"`
	// ValidFor is the signed document's validUntil from now: a signed
	// copy must not stay trustworthy forever.
	ValidFor time.Duration `yaml:"valid_for"`
}

// computedNames are the SAML names the computed attributes must carry.
var computedNames = map[string]string{
	ComputedSubjectID:  SubjectIDName,
	ComputedPairwiseID: PairwiseIDName,
	ComputedTargetedID: oidEduPerson + "10",
}

// defaultReleaseNames are the attribute names of the default mapping; a
// release rule may name one the site removed from saml.attributes (it is
// then not released) without an error, while any other unknown name is a
// typo.
func defaultReleaseNames() map[string]bool {
	out := map[string]bool{}
	for _, a := range DefaultSAMLAttributes() {
		out[a.Name] = true
	}
	return out
}

// rsBundle is the REFEDS Research and Scholarship attribute bundle.
func rsBundle() []string {
	return []string{"eduPersonPrincipalName", "mail", "displayName", "givenName", "sn", "eduPersonScopedAffiliation"}
}

// federationAttributes are the attributes the default policy may release
// to federation SPs that request them, as GakuNin IdPs do: everything of
// the default mapping but the entitlements, which are campus-internal.
func federationAttributes() []string {
	return []string{
		"eduPersonPrincipalName", "eduPersonScopedAffiliation", "eduPersonAffiliation",
		"mail", "displayName", "givenName", "sn",
		"jaDisplayName", "jasn", "jaGivenName", "jao", "jaou",
		"eduPersonTargetedID", "subject-id", "pairwise-id",
	}
}

func defaultRelease() SAMLRelease {
	return SAMLRelease{
		EntityCategories: []SAMLReleaseRule{
			{Match: CategoryResearchAndScholarship, Mode: ReleaseBundle, Attributes: rsBundle()},
			{Match: CategoryCoCoV1, Mode: ReleaseRequested, Attributes: federationAttributes()},
			{Match: CategoryCoCoV2, Mode: ReleaseRequested, Attributes: federationAttributes()},
		},
		RegistrationAuthorities: []SAMLReleaseRule{},
		Default:                 SAMLReleaseRule{Mode: ReleaseRequested, Attributes: federationAttributes()},
	}
}

func defaultSAMLMetadata() SAMLMetadata {
	return SAMLMetadata{Contacts: []SAMLContact{}}
}

func (f SAMLFederation) validate(v *validator, p string, enabled bool) {
	if v.required(p+".name", f.Name) && !safeLabel(f.Name) {
		v.add(p+".name", "must be letters, digits, '-' or '_' (got %q)", f.Name)
	}
	switch {
	case f.MetadataURL == "" && f.MetadataFile == "":
		v.add(p, "needs metadata_url or metadata_file")
	case f.MetadataURL != "":
		u, err := url.Parse(f.MetadataURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			v.add(p+".metadata_url", "must be an absolute http(s):// URL (got %q)", f.MetadataURL)
		}
		// The file only keeps a copy of the downloads; it may not exist yet.
	case enabled:
		if st, err := os.Stat(f.MetadataFile); err != nil || st.IsDir() {
			v.add(p+".metadata_file", "cannot be read (%s)", f.MetadataFile)
		}
	}
	if v.required(p+".signing_cert_file", f.SigningCertFile) && enabled {
		validatePEMFile(v, p+".signing_cert_file", f.SigningCertFile, "CERTIFICATE")
	}
	if f.Refresh != 0 && (f.Refresh < time.Minute || f.Refresh > 7*24*time.Hour) {
		v.add(p+".refresh", "must be between 1m and 168h (got %s)", formatDuration(f.Refresh))
	}
	if f.MaxValidity < 0 || f.MaxValidity > 366*24*time.Hour {
		v.add(p+".max_validity", "must be between 0 (no limit) and 8784h (got %s)", formatDuration(f.MaxValidity))
	}
}

func safeLabel(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return s != ""
}

func (r SAMLRelease) validate(v *validator, p string, attributes map[string]int) {
	for i, rule := range r.EntityCategories {
		rule.validate(v, fmt.Sprintf("%s.entity_categories[%d]", p, i), attributes, true)
	}
	for i, rule := range r.RegistrationAuthorities {
		rule.validate(v, fmt.Sprintf("%s.registration_authorities[%d]", p, i), attributes, true)
	}
	r.Default.validate(v, p+".default", attributes, false)
}

func (rule SAMLReleaseRule) validate(v *validator, p string, attributes map[string]int, needsMatch bool) {
	if needsMatch {
		if v.required(p+".match", rule.Match) {
			validateEntityID(v, p+".match", rule.Match)
		}
	} else if rule.Match != "" {
		v.add(p+".match", "is not used by the default rule")
	}
	v.oneOf(p+".mode", rule.Mode, ReleaseRequested, ReleaseBundle)
	known := defaultReleaseNames()
	for i, name := range rule.Attributes {
		if _, ok := attributes[name]; !ok && !known[name] {
			v.add(fmt.Sprintf("%s.attributes[%d]", p, i), "%q is not defined in saml.attributes", name)
		}
	}
}

func (m SAMLMetadata) validate(v *validator, p string, enabled bool) {
	for _, l := range []struct {
		key string
		val Localized
		url bool
	}{
		{"display_name", m.DisplayName, false},
		{"description", m.Description, false},
		{"information_url", m.InformationURL, true},
		{"privacy_statement_url", m.PrivacyStatementURL, true},
		{"organization.name", m.Organization.Name, false},
		{"organization.display_name", m.Organization.DisplayName, false},
		{"organization.url", m.Organization.URL, true},
	} {
		for lang, s := range map[string]string{"ja": l.val.JA, "en": l.val.EN} {
			path := p + "." + l.key + "." + lang
			if strings.ContainsAny(s, "\r\n") {
				v.add(path, "must be a single line")
			}
			if l.url {
				v.webURL(path, s)
			}
		}
	}
	org := m.Organization
	if (org.Name != Localized{} || org.DisplayName != Localized{} || org.URL != Localized{}) {
		// The schema wants all three, in the same languages.
		v.localized(p+".organization.name", org.Name)
		v.localized(p+".organization.display_name", org.DisplayName)
		v.localized(p+".organization.url", org.URL)
	}
	if m.Logo.URL != "" {
		v.webURL(p+".logo.url", m.Logo.URL)
		if m.Logo.Width < 1 || m.Logo.Height < 1 {
			v.add(p+".logo", "needs width and height in pixels")
		}
	}
	for i, c := range m.Contacts {
		path := fmt.Sprintf("%s.contacts[%d]", p, i)
		v.oneOf(path+".type", c.Type, ContactTechnical, ContactSupport, ContactAdministrative, ContactSecurity)
		v.bareAddress(path+".email", c.Email)
		if strings.ContainsAny(c.Name, "\r\n") {
			v.add(path+".name", "must be a single line")
		}
	}
	if m.ErrorURL != "" {
		v.webURL(p+".error_url", m.ErrorURL)
	}
	if m.EncryptionCertFile != "" && enabled {
		validatePEMFile(v, p+".encryption_cert_file", m.EncryptionCertFile, "CERTIFICATE")
	}
	if m.ValidFor != 0 && (m.ValidFor < time.Hour || m.ValidFor > 366*24*time.Hour) {
		v.add(p+".valid_for", "must be 0 (no validUntil) or between 1h and 8784h (got %s)", formatDuration(m.ValidFor))
	}
}

func (s SAMLMetadataSigning) validate(v *validator, p string) {
	if s.Enabled {
		v.duration(p+".valid_for", s.ValidFor, 366*24*time.Hour)
	}
}

// validateComputed checks an attribute the IdP computes.
func (a SAMLAttribute) validateComputed(v *validator, path string, scope string, enabled bool) {
	if !v.oneOf(path+".computed", a.Computed, ComputedSubjectID, ComputedPairwiseID, ComputedTargetedID) {
		return
	}
	if want := computedNames[a.Computed]; a.OID != want {
		v.add(path+".oid", "must be %q for computed %s (got %q)", want, a.Computed, a.OID)
	}
	if a.LDAP != "" {
		v.add(path+".ldap", "must be empty: %s is computed", a.Computed)
	}
	if a.Scoped {
		v.add(path+".scoped", "must be false: %s carries its own scope", a.Computed)
	}
	if a.Computed != ComputedTargetedID && scope == "" && enabled {
		v.add(path+".computed", "%s needs saml.scope", a.Computed)
	}
}

func (v *validator) int64Range(path string, n, lo, hi int64) {
	if n < lo || n > hi {
		v.add(path, "must be between %d and %d (got %d)", lo, hi, n)
	}
}
