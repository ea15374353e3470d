package config

import (
	"net/url"
	"strings"
	"time"
)

// Consent modes of a SAML SP or OIDC client (consent: none|once|always).
const (
	// ConsentNone releases without asking.
	ConsentNone = "none"
	// ConsentOnce asks, and offers to remember the answer for the service
	// until the requested attributes or their values change.
	ConsentOnce = "once"
	// ConsentAlways asks at every login and remembers nothing.
	ConsentAlways = "always"
)

// Consent is the attribute-release consent step (uApprove.jp-style).
type Consent struct {
	// RememberFor is how long a remembered consent lasts before the user
	// is asked again even if nothing changed.
	RememberFor time.Duration `yaml:"remember_for"`
	// TermsOfUse is shown on every consent page when set (both languages);
	// a service's own terms_of_use replaces it.
	TermsOfUse Localized `yaml:"terms_of_use"`
}

func defaultConsent() Consent {
	return Consent{RememberFor: 365 * 24 * time.Hour}
}

// maxConsentTerms bounds a terms-of-use text (per language): the page shows
// it in full.
const maxConsentTerms = 8000

func (c Consent) validate(v *validator, p string) {
	v.duration(p+".remember_for", c.RememberFor, 5*366*24*time.Hour)
	validateTerms(v, p+".terms_of_use", c.TermsOfUse)
}

// validateTerms accepts no text or both languages, each of bounded length.
func validateTerms(v *validator, p string, l Localized) {
	if l.JA == "" && l.EN == "" {
		return
	}
	v.localized(p, l)
	if len(l.JA) > maxConsentTerms || len(l.EN) > maxConsentTerms {
		v.add(p, "must be at most %d bytes per language", maxConsentTerms)
	}
}

// validateConsentMode accepts "" (the default) or one of the modes.
func validateConsentMode(v *validator, p, mode string) {
	if mode != "" {
		v.oneOf(p, mode, ConsentNone, ConsentOnce, ConsentAlways)
	}
}

// validateLogoURL accepts no logo or an https:// URL: the consent page
// loads it from the user's browser, which must not be sent to plain http.
func validateLogoURL(v *validator, p, raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || strings.ContainsAny(raw, " \"'") {
		v.add(p, "must be an absolute https:// URL (got %q)", raw)
	}
}

// ConsentModeOrDefault is the SP's consent mode: its consent setting, else
// once for an SP whose metadata comes from a federation (the user has no
// other say in what an outside service receives) and none for an SP with
// its own metadata, a campus service the university configured itself.
func (sp SAMLServiceProvider) ConsentModeOrDefault(fromFederation bool) string {
	switch {
	case sp.Consent != "":
		return sp.Consent
	case fromFederation:
		return ConsentOnce
	default:
		return ConsentNone
	}
}

// ConsentModeOrDefault is the client's consent mode: its consent setting,
// else none (every client is configured locally by the university).
func (c OIDCClient) ConsentModeOrDefault() string {
	if c.Consent != "" {
		return c.Consent
	}
	return ConsentNone
}
