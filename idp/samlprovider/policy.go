package samlprovider

import (
	"github.com/crewjam/saml"

	"github.com/campusidp/campusidp/config"
)

// Authentication context classes the IdP answers with.
const (
	// ClassMFA is the REFEDS MFA profile: a second factor was used.
	ClassMFA = "https://refeds.org/profile/mfa"
	// ClassPasswordProtectedTransport is a password over TLS.
	ClassPasswordProtectedTransport = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"

	classPassword = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
)

// Strength of the classes we understand, for the comparisons of a
// RequestedAuthnContext. We can answer with levelPPT and levelMFA.
const (
	levelPassword = iota
	levelPPT
	levelMFA
)

var classLevels = map[string]int{
	classPassword:                   levelPassword,
	ClassPasswordProtectedTransport: levelPPT,
	ClassMFA:                        levelMFA,
}

// authnPolicy is what an SP accepts as authentication.
type authnPolicy struct {
	allowPPT bool // a password alone may be answered
	allowMFA bool // REFEDS MFA may be answered
}

// requireMFA says whether only a second factor satisfies the SP; the login
// core is then asked for one.
func (p authnPolicy) requireMFA() bool { return !p.allowPPT }

// classRef is the context to state for a login with or without MFA.
func (p authnPolicy) classRef(mfaDone bool) string {
	switch {
	case mfaDone && p.allowMFA:
		return ClassMFA
	case p.allowPPT:
		return ClassPasswordProtectedTransport
	}
	return "" // unreachable: requireMFA made the login core demand the factor
}

// decidePolicy reads the SP's RequestedAuthnContext (SAML core 3.3.2.2.1)
// and the SP's require_mfa setting. It returns false when no context we
// can answer with satisfies the request (status NoAuthnContext).
func decidePolicy(rac *requestedAuthnContext, spRequiresMFA bool) (authnPolicy, bool) {
	acceptable := map[int]bool{levelPPT: true, levelMFA: true}
	if rac != nil && (len(rac.ClassRefs) > 0 || len(rac.DeclRefs) > 0) {
		if len(rac.ClassRefs) == 0 {
			return authnPolicy{}, false // declarations are not supported
		}
		var known []int
		for _, c := range rac.ClassRefs {
			if l, ok := classLevels[c]; ok {
				known = append(known, l)
			}
		}
		if len(known) == 0 {
			return authnPolicy{}, false
		}
		lo, hi := known[0], known[0]
		for _, l := range known {
			lo, hi = min(lo, l), max(hi, l)
		}
		for _, l := range []int{levelPPT, levelMFA} {
			switch rac.Comparison {
			case "", "exact":
				acceptable[l] = false
				for _, k := range known {
					acceptable[l] = acceptable[l] || k == l
				}
			case "minimum":
				acceptable[l] = l >= lo
			case "better":
				acceptable[l] = l > lo
			case "maximum":
				acceptable[l] = l <= hi
			default:
				return authnPolicy{}, false
			}
		}
	}
	if spRequiresMFA {
		acceptable[levelPPT] = false
	}
	p := authnPolicy{allowPPT: acceptable[levelPPT], allowMFA: acceptable[levelMFA]}
	return p, p.allowPPT || p.allowMFA
}

// NameID formats.
const (
	NameIDFormatPersistent  = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	NameIDFormatTransient   = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	NameIDFormatEmail       = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	nameIDFormatUnspecified = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
)

func nameIDFormatURI(setting string) string {
	switch setting {
	case config.NameIDTransient:
		return NameIDFormatTransient
	case config.NameIDEmail:
		return NameIDFormatEmail
	}
	return NameIDFormatPersistent
}

// chooseNameIDFormat honours a requested format when it is the SP's
// configured one, or transient (which reveals nothing); anything else
// would let an SP pick an identifier its registration does not allow.
func chooseNameIDFormat(sp *ServiceProvider, policy *saml.NameIDPolicy) (string, bool) {
	configured := nameIDFormatURI(sp.Config.NameIDFormatOrDefault())
	if policy == nil || policy.Format == nil {
		return configured, true
	}
	switch requested := *policy.Format; requested {
	case "", nameIDFormatUnspecified, configured:
		return configured, true
	case NameIDFormatTransient:
		return requested, true
	}
	return "", false
}
