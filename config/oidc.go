package config

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// OIDCSigningAlgs are the algorithms oidc.keys.algorithm and a client's
// id_token_signed_response_alg accept.
var OIDCSigningAlgs = []string{OIDCAlgRS256, OIDCAlgES256, OIDCAlgEdDSA}

// Values accepted by the OIDC settings.
const (
	OIDCAlgRS256 = "RS256"
	OIDCAlgES256 = "ES256"
	OIDCAlgEdDSA = "EdDSA" // Ed25519

	OIDCAuthBasic = "client_secret_basic"
	OIDCAuthPost  = "client_secret_post"
	OIDCAuthNone  = "none" // a public client: no secret, PKCE only

	OIDCAppWeb    = "web"
	OIDCAppNative = "native"

	OIDCSubjectPublic   = "public"
	OIDCSubjectPairwise = "pairwise"

	OIDCTokenOpaque = "opaque"
	OIDCTokenJWT    = "jwt"

	// OIDCACRREFEDSMFA is the REFEDS MFA profile, the acr of a login with a
	// second factor unless acr.mfa says otherwise.
	OIDCACRREFEDSMFA = "https://refeds.org/profile/mfa"

	// OIDCMaxCodeLifetime caps oidc.code_lifetime: authorization codes are
	// redeemed by the client's server at once, so a longer life only helps
	// an attacker who intercepted one.
	OIDCMaxCodeLifetime = 60 * time.Second
)

// Claim sources (oidc.claims[].source). An attribute source is written
// "attribute:NAME" with an LDAP attribute fetched through
// ldap.attributes.extra (or one of the mapped attributes).
const (
	ClaimSourceID            = "id"
	ClaimSourceDisplayName   = "display_name"
	ClaimSourceDisplayNameJA = "display_name_ja"
	ClaimSourceMail          = "mail"
	ClaimSourceGroups        = "groups"
	ClaimSourceAttribute     = "attribute:"
)

// OIDC is the OpenID Connect provider: lifetimes, signing keys, assurance
// values, the claims it can release and the registered relying parties.
type OIDC struct {
	// CodeLifetime is how long an authorization code may be redeemed.
	CodeLifetime        time.Duration `yaml:"code_lifetime"`
	AccessTokenLifetime time.Duration `yaml:"access_token_lifetime"`
	IDTokenLifetime     time.Duration `yaml:"id_token_lifetime"`
	// RefreshTokenLifetime is how long a refresh token stays usable without
	// being used; every use replaces it with a new one.
	RefreshTokenLifetime time.Duration `yaml:"refresh_token_lifetime"`
	// RefreshTokenAbsoluteLifetime ends a chain of refresh tokens, counted
	// from the login that started it, however often it was used.
	RefreshTokenAbsoluteLifetime time.Duration `yaml:"refresh_token_absolute_lifetime"`
	Keys                         OIDCKeys      `yaml:"keys"`
	ACR                          OIDCACR       `yaml:"acr"`
	// SubjectAttribute is the directory attribute whose value is the "sub"
	// claim; empty means the login ID. Pick one that never changes. The
	// idp command fetches it (and the claims' attributes) at login.
	SubjectAttribute string `yaml:"subject_attribute"`
	// PairwiseSalt keys the pairwise subjects; required when a client uses
	// subject_type pairwise, and never to be changed afterwards.
	PairwiseSalt Secret `yaml:"pairwise_salt"`
	// EmailVerified adds email_verified: true wherever email is released.
	EmailVerified bool         `yaml:"email_verified"`
	Claims        []OIDCClaim  `yaml:"claims"`
	Clients       []OIDCClient `yaml:"clients"`
	// ClientAuthBudget limits failed client authentications at the token,
	// introspection and revocation endpoints; past it they answer 429
	// before checking (and hashing) the secret.
	ClientAuthBudget ClientAuthBudget `yaml:"client_auth_budget"`
}

// ClientAuthBudget counts failed client authentications per client ID and
// per caller address.
type ClientAuthBudget struct {
	PerClient Budget `yaml:"per_client"`
	PerIP     Budget `yaml:"per_ip"`
}

// OIDCKeys is how tokens are signed.
type OIDCKeys struct {
	Algorithm string `yaml:"algorithm"`
	RSABits   int    `yaml:"rsa_bits"`
	// RotationPeriod is the age at which a new signing key replaces the
	// current one; the old public key stays published until every token
	// it signed has expired.
	RotationPeriod time.Duration `yaml:"rotation_period"`
}

// OIDCACR are the acr values the provider asserts.
type OIDCACR struct {
	// Password is the acr of a login without a second factor.
	Password string `yaml:"password"`
	// MFA is the acr of a login with a second factor; a request whose
	// acr_values name it (or the REFEDS MFA profile) demands the factor.
	MFA string `yaml:"mfa"`
	// Methods optionally gives a login through one particular factor its
	// own acr, e.g. a higher assurance for the authenticator app than for
	// mailed codes. A method left empty asserts MFA.
	Methods OIDCACRMethods `yaml:"methods"`
	// PhishingResistant, when set, is an acr value a relying party may ask
	// for to get a security key or passkey login only; such a login
	// asserts it unless methods.webauthn gives its own value.
	PhishingResistant string `yaml:"phishing_resistant"`
}

// OIDCACRMethods are per-factor acr values; the field names follow the
// factor methods the login core reports.
type OIDCACRMethods struct {
	EmailOTP       string `yaml:"email_otp"`
	TOTP           string `yaml:"totp"`
	RecoveryCode   string `yaml:"recovery_code"`
	TrustedBrowser string `yaml:"trusted_browser"`
	WebAuthn       string `yaml:"webauthn"`
}

// byMethod lists the configured values by factor method.
func (m OIDCACRMethods) byMethod() map[string]string {
	out := map[string]string{}
	for k, v := range map[string]string{"email_otp": m.EmailOTP, "totp": m.TOTP,
		"recovery_code": m.RecoveryCode, "trusted_browser": m.TrustedBrowser, "webauthn": m.WebAuthn} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// Values returns the configured per-method acr values, sorted.
func (m OIDCACRMethods) Values() []string {
	return slices.Sorted(maps.Values(m.byMethod()))
}

// For returns the acr of a login: Password without a second factor, else
// the method's own value or MFA.
func (a OIDCACR) For(mfa bool, method string) string {
	if !mfa {
		return a.Password
	}
	if v, ok := a.Methods.byMethod()[method]; ok {
		return v
	}
	if method == "webauthn" && a.PhishingResistant != "" {
		return a.PhishingResistant
	}
	return a.MFA
}

// DemandsPhishingResistant reports whether an acr value asked for by a
// relying party allows only a security key or passkey.
func (a OIDCACR) DemandsPhishingResistant(acr string) bool {
	return acr != "" && (acr == a.PhishingResistant || acr == a.Methods.WebAuthn)
}

// Demands reports whether an acr value asked for by a relying party
// requires a second factor.
func (a OIDCACR) Demands(acr string) bool {
	return acr == a.MFA || acr == OIDCACRREFEDSMFA || slices.Contains(a.Methods.Values(), acr) ||
		(acr != "" && acr == a.PhishingResistant)
}

// OIDCClaim maps one claim to where its value comes from and the scope
// that releases it.
type OIDCClaim struct {
	Name   string `yaml:"name"`
	Source string `yaml:"source"`
	Scope  string `yaml:"scope"`
	// Multi releases every value as a JSON array; otherwise the first value
	// as a string. Groups are always an array.
	Multi bool `yaml:"multi"`
	// Suffix is appended to every value, e.g. "@example.ac.jp" to scope an
	// affiliation or to build an eduPersonPrincipalName from the login ID.
	Suffix string `yaml:"suffix"`
}

// OIDCClient is one registered relying party.
type OIDCClient struct {
	ID string `yaml:"id"`
	// Name is shown on the login page ("Sign in to ...").
	Name string `yaml:"name"`
	// Secret is the client secret itself; prefer SecretHash.
	Secret Secret `yaml:"secret"`
	// SecretHash is a bcrypt ($2a$, $2b$, $2y$) or argon2id ($argon2id$)
	// hash of the client secret.
	SecretHash              string   `yaml:"secret_hash"`
	TokenEndpointAuthMethod string   `yaml:"token_endpoint_auth_method"`
	ApplicationType         string   `yaml:"application_type"`
	RedirectURIs            []string `yaml:"redirect_uris"`
	PostLogoutRedirectURIs  []string `yaml:"post_logout_redirect_uris"`
	// Scopes the client may receive; "offline_access" allows refresh tokens.
	Scopes []string `yaml:"scopes"`
	// RequireMFA demands a second factor for every login to this client.
	RequireMFA bool `yaml:"require_mfa"`
	// ClientCredentials allows the client_credentials grant (machine tokens
	// without a user).
	ClientCredentials bool   `yaml:"client_credentials"`
	SubjectType       string `yaml:"subject_type"`
	// SectorIdentifier groups clients that share pairwise subjects; empty
	// means the host of the redirect URIs.
	SectorIdentifier  string `yaml:"sector_identifier"`
	AccessTokenFormat string `yaml:"access_token_format"`
	// AllowMissingPKCE lets a confidential client omit PKCE (plain is never
	// accepted). Only for old clients that cannot send it.
	AllowMissingPKCE bool `yaml:"allow_missing_pkce"`
	// UserinfoInIDToken puts the profile and email claims into the ID token
	// as well as the userinfo answer.
	UserinfoInIDToken bool `yaml:"userinfo_in_id_token"`
	// Consent is none (the default: clients are campus applications the
	// university registered), once or always.
	Consent string `yaml:"consent"`
	// OptionalScopes are scopes whose claims the user may withhold on the
	// consent page; the claims of every other granted scope are required.
	OptionalScopes []string `yaml:"optional_scopes"`
	// LogoURI is an https:// image shown on the consent page.
	LogoURI string `yaml:"logo_uri"`
	// TermsOfUse replaces consent.terms_of_use on this client's consent page.
	TermsOfUse Localized `yaml:"terms_of_use"`
	// IDTokenSignedResponseAlg signs this client's ID tokens (and JWT
	// access tokens): RS256, ES256 or EdDSA; empty means oidc.keys.algorithm.
	// The client registration metadata of the same name (OpenID Connect
	// Dynamic Client Registration 1.0, section 2).
	IDTokenSignedResponseAlg string `yaml:"id_token_signed_response_alg"`
	// BackchannelLogoutURI receives OpenID Connect Back-Channel Logout
	// tokens when the user's IdP session ends; ID tokens then carry sid.
	BackchannelLogoutURI string `yaml:"backchannel_logout_uri"`
	// FrontchannelLogoutURI is loaded in a frame of the IdP's logout page
	// (Front-Channel Logout 1.0, with iss and sid); ID tokens carry sid.
	FrontchannelLogoutURI string `yaml:"frontchannel_logout_uri"`
}

// WantsLogout says whether the client registered a logout URI, so its ID
// tokens carry the IdP session's sid.
func (c OIDCClient) WantsLogout() bool {
	return c.BackchannelLogoutURI != "" || c.FrontchannelLogoutURI != ""
}

// Effective settings of a client: an empty key means its default.

// AuthMethod is token_endpoint_auth_method, client_secret_basic by default.
func (c OIDCClient) AuthMethod() string { return orDefault(c.TokenEndpointAuthMethod, OIDCAuthBasic) }

// AppType is application_type, web by default.
func (c OIDCClient) AppType() string { return orDefault(c.ApplicationType, OIDCAppWeb) }

// Subject is subject_type, public by default.
func (c OIDCClient) Subject() string { return orDefault(c.SubjectType, OIDCSubjectPublic) }

// TokenFormat is access_token_format, opaque by default.
func (c OIDCClient) TokenFormat() string { return orDefault(c.AccessTokenFormat, OIDCTokenOpaque) }

// AllowedScopes is scopes, DefaultOIDCClientScopes when not given.
func (c OIDCClient) AllowedScopes() []string {
	if len(c.Scopes) == 0 {
		return DefaultOIDCClientScopes()
	}
	return c.Scopes
}

// SigningAlg is id_token_signed_response_alg, keys.algorithm (def) by
// default.
func (c OIDCClient) SigningAlg(def string) string { return orDefault(c.IDTokenSignedResponseAlg, def) }

// SigningAlgorithms lists the algorithms tokens are signed with: the
// default (keys.algorithm) first, then the other clients' choices in the
// order of the client list. Each needs a signing key.
func (o OIDC) SigningAlgorithms() []string {
	algs := []string{o.Keys.Algorithm}
	for _, c := range o.Clients {
		if a := c.SigningAlg(o.Keys.Algorithm); !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	return algs
}

// IsPublic reports whether the client has no secret (PKCE only).
func (c OIDCClient) IsPublic() bool { return c.AuthMethod() == OIDCAuthNone }

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// DefaultOIDCClaims are the claims released when oidc.claims is not given.
func DefaultOIDCClaims() []OIDCClaim {
	return []OIDCClaim{
		{Name: "preferred_username", Source: ClaimSourceID, Scope: "profile"},
		{Name: "name", Source: ClaimSourceDisplayName, Scope: "profile"},
		{Name: "name#ja", Source: ClaimSourceDisplayNameJA, Scope: "profile"},
		{Name: "email", Source: ClaimSourceMail, Scope: "email"},
		{Name: "groups", Source: ClaimSourceGroups, Scope: "groups", Multi: true},
		{Name: "eduperson_principal_name", Source: ClaimSourceAttribute + "eduPersonPrincipalName", Scope: "eduperson_principal_name"},
		{Name: "eduperson_scoped_affiliation", Source: ClaimSourceAttribute + "eduPersonScopedAffiliation", Scope: "eduperson_scoped_affiliation", Multi: true},
	}
}

// DefaultOIDCClientScopes are the scopes of a client that lists none.
func DefaultOIDCClientScopes() []string { return []string{"openid", "profile", "email"} }

func defaultOIDC() OIDC {
	return OIDC{
		CodeLifetime:                 OIDCMaxCodeLifetime,
		AccessTokenLifetime:          time.Hour,
		IDTokenLifetime:              time.Hour,
		RefreshTokenLifetime:         14 * 24 * time.Hour,
		RefreshTokenAbsoluteLifetime: 30 * 24 * time.Hour,
		Keys: OIDCKeys{
			Algorithm:      OIDCAlgRS256,
			RSABits:        2048,
			RotationPeriod: 30 * 24 * time.Hour,
		},
		ACR: OIDCACR{
			Password: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
			MFA:      OIDCACRREFEDSMFA,
		},
		Claims: DefaultOIDCClaims(),
		ClientAuthBudget: ClientAuthBudget{
			PerClient: Budget{Limit: 50, Window: 15 * time.Minute},
			PerIP:     Budget{Limit: 20, Window: 15 * time.Minute},
		},
	}
}

// ClaimAttribute returns the LDAP attribute of an "attribute:NAME" source.
func (c OIDCClaim) ClaimAttribute() (string, bool) {
	return strings.CutPrefix(c.Source, ClaimSourceAttribute)
}

// ClaimReleasable says whether the directory can ever fill claim cl: an
// attribute: source is always fetched (the IdP adds it to the search), but
// groups need a groups mode and the Japanese name an attribute mapped.
func (c *Config) ClaimReleasable(cl OIDCClaim) bool {
	switch cl.Source {
	case ClaimSourceGroups:
		return c.LDAP.Groups.Mode != GroupsNone
	case ClaimSourceDisplayNameJA:
		return c.LDAP.Attributes.DisplayNameJA != ""
	}
	return true
}

// claimWarnings name the oidc.claims the directory can never fill; discovery
// leaves them out of claims_supported.
func (c *Config) claimWarnings() []string {
	var w []string
	for i, cl := range c.OIDC.Claims {
		if c.ClaimReleasable(cl) {
			continue
		}
		fix := "set ldap.attributes.display_name_ja or remove the claim"
		if cl.Source == ClaimSourceGroups {
			fix = "set ldap.groups.mode to memberof or search, or remove the claim"
		}
		w = append(w, fmt.Sprintf("oidc.claims[%d]: %q (source %s) is never released: %s", i, cl.Name, cl.Source, fix))
	}
	return w
}

// Scopes returns every scope the provider knows: openid, offline_access and
// the scopes that release claims, in that order without repeats.
func (o OIDC) Scopes() []string {
	scopes := []string{"openid", "offline_access"}
	for _, c := range o.Claims {
		if !slices.Contains(scopes, c.Scope) {
			scopes = append(scopes, c.Scope)
		}
	}
	return scopes
}

// reservedClaims are set by the provider itself and cannot be mapped.
var reservedClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce",
	"acr", "amr", "azp", "at_hash", "c_hash", "sid", "client_id", "scope", "email_verified"}

var (
	clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
	// scopeToken is RFC 6749's scope-token: printable ASCII without space,
	// quote or backslash.
	scopeToken = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)
	claimName  = regexp.MustCompile(`^[A-Za-z0-9_.:-]+(#[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*)?$`)
)

// minClientSecretBytes is the shortest plain client secret accepted.
const minClientSecretBytes = 32

func (o OIDC) validate(v *validator, p string) {
	v.duration(p+".code_lifetime", o.CodeLifetime, OIDCMaxCodeLifetime)
	v.duration(p+".access_token_lifetime", o.AccessTokenLifetime, 24*time.Hour)
	v.duration(p+".id_token_lifetime", o.IDTokenLifetime, 24*time.Hour)
	idleOK := v.duration(p+".refresh_token_lifetime", o.RefreshTokenLifetime, 366*24*time.Hour)
	absOK := v.duration(p+".refresh_token_absolute_lifetime", o.RefreshTokenAbsoluteLifetime, 366*24*time.Hour)
	if idleOK && absOK && o.RefreshTokenLifetime > o.RefreshTokenAbsoluteLifetime {
		v.add(p+".refresh_token_lifetime", "must not exceed oidc.refresh_token_absolute_lifetime (%s > %s)",
			formatDuration(o.RefreshTokenLifetime), formatDuration(o.RefreshTokenAbsoluteLifetime))
	}
	o.Keys.validate(v, p+".keys", slices.Contains(o.SigningAlgorithms(), OIDCAlgRS256))
	o.ACR.validate(v, p+".acr")
	v.budget(p+".client_auth_budget.per_client", o.ClientAuthBudget.PerClient, 24*time.Hour)
	v.budget(p+".client_auth_budget.per_ip", o.ClientAuthBudget.PerIP, 24*time.Hour)
	v.attribute(p+".subject_attribute", o.SubjectAttribute, false)
	hasSalt := v.secret(p+".pairwise_salt", o.PairwiseSalt, false)
	if hasSalt && len(o.PairwiseSalt.Value()) < 16 {
		v.add(p+".pairwise_salt", "must be at least 16 bytes (got %d); generate one with: openssl rand -base64 32", len(o.PairwiseSalt.Value()))
	}

	claimScopes := map[string]bool{}
	seenClaims := map[string]int{}
	for i, c := range o.Claims {
		path := fmt.Sprintf("%s.claims[%d]", p, i)
		c.validate(v, path)
		if first, dup := seenClaims[c.Name]; dup && c.Name != "" {
			v.add(path+".name", "repeats claims[%d] (%q)", first, c.Name)
		} else {
			seenClaims[c.Name] = i
		}
		claimScopes[c.Scope] = true
	}

	seenClients := map[string]int{}
	for i, c := range o.Clients {
		path := fmt.Sprintf("%s.clients[%d]", p, i)
		c.validate(v, path, claimScopes, hasSalt)
		if first, dup := seenClients[c.ID]; dup && c.ID != "" {
			v.add(path+".id", "repeats clients[%d] (%q)", first, c.ID)
		} else {
			seenClients[c.ID] = i
		}
	}
}

// validate checks the keys; usesRSA: the default or a client signs with RS256.
func (k OIDCKeys) validate(v *validator, p string, usesRSA bool) {
	v.oneOf(p+".algorithm", k.Algorithm, OIDCSigningAlgs...)
	if usesRSA && k.RSABits != 2048 && k.RSABits != 3072 && k.RSABits != 4096 {
		v.add(p+".rsa_bits", "must be 2048, 3072 or 4096 (got %d)", k.RSABits)
	}
	if v.duration(p+".rotation_period", k.RotationPeriod, 366*24*time.Hour) && k.RotationPeriod < time.Hour {
		v.add(p+".rotation_period", "must be at least 1h (got %s)", formatDuration(k.RotationPeriod))
	}
}

func (a OIDCACR) validate(v *validator, p string) {
	for _, f := range []struct{ key, value string }{{"password", a.Password}, {"mfa", a.MFA}} {
		if v.required(p+"."+f.key, f.value) && !scopeToken.MatchString(f.value) {
			v.add(p+"."+f.key, "must be one token without spaces or quotes, such as a URI (got %q)", f.value)
		}
	}
	if a.Password != "" && a.Password == a.MFA {
		v.add(p+".mfa", "must differ from oidc.acr.password, or relying parties cannot tell an MFA login")
	}
	if a.PhishingResistant != "" {
		switch {
		case !scopeToken.MatchString(a.PhishingResistant):
			v.add(p+".phishing_resistant", "must be one token without spaces or quotes, such as a URI (got %q)", a.PhishingResistant)
		case a.PhishingResistant == a.Password || a.PhishingResistant == a.MFA:
			v.add(p+".phishing_resistant", "must differ from oidc.acr.password and oidc.acr.mfa, or relying parties cannot tell a security-key login")
		}
	}
	methods := a.Methods.byMethod()
	for _, method := range slices.Sorted(maps.Keys(methods)) {
		value := methods[method]
		key := p + ".methods." + method
		switch {
		case !scopeToken.MatchString(value):
			v.add(key, "must be one token without spaces or quotes, such as a URI (got %q)", value)
		case value == a.Password:
			v.add(key, "must differ from oidc.acr.password, or relying parties cannot tell an MFA login")
		}
	}
}

func (c OIDCClaim) validate(v *validator, p string) {
	switch {
	case !v.required(p+".name", c.Name):
	case !claimName.MatchString(c.Name):
		v.add(p+".name", "is not a claim name (letters, digits, _ . : -, optionally #language such as name#ja) (got %q)", c.Name)
	case slices.Contains(reservedClaims, c.Name):
		v.add(p+".name", "%q is set by the provider itself and cannot be mapped", c.Name)
	}
	if attr, ok := c.ClaimAttribute(); ok {
		v.attribute(p+".source", attr, true)
	} else if c.Source == "" {
		v.add(p+".source", "is required: id, display_name, display_name_ja, mail, groups or attribute:NAME")
	} else {
		v.oneOf(p+".source", c.Source, ClaimSourceID, ClaimSourceDisplayName, ClaimSourceDisplayNameJA,
			ClaimSourceMail, ClaimSourceGroups)
	}
	switch {
	case !v.required(p+".scope", c.Scope):
	case !scopeToken.MatchString(c.Scope):
		v.add(p+".scope", "is not a scope name (printable characters without spaces or quotes) (got %q)", c.Scope)
	case c.Scope == "offline_access":
		v.add(p+".scope", "offline_access asks for refresh tokens and cannot release claims")
	}
	if strings.ContainsAny(c.Suffix, " \t\r\n") {
		v.add(p+".suffix", "must not contain spaces (got %q)", c.Suffix)
	}
}

func (c OIDCClient) validate(v *validator, p string, claimScopes map[string]bool, hasSalt bool) {
	validateConsentMode(v, p+".consent", c.Consent)
	validateLogoURL(v, p+".logo_uri", c.LogoURI)
	validateTerms(v, p+".terms_of_use", c.TermsOfUse)
	for j, s := range c.OptionalScopes {
		if !slices.Contains(c.AllowedScopes(), s) {
			v.add(fmt.Sprintf("%s.optional_scopes[%d]", p, j), "%q is not in the client's scopes", s)
		}
	}
	if v.required(p+".id", c.ID) && !clientIDPattern.MatchString(c.ID) {
		v.add(p+".id", "may contain only letters, digits and . _ ~ - (at most 128) (got %q)", c.ID)
	}
	if strings.ContainsAny(c.Name, "\r\n") {
		v.add(p+".name", "must be a single line")
	}
	authOK := v.oneOf(p+".token_endpoint_auth_method", c.AuthMethod(), OIDCAuthBasic, OIDCAuthPost, OIDCAuthNone)
	hasSecret := v.secret(p+".secret", c.Secret, false)
	switch {
	case !authOK:
	case c.IsPublic():
		if hasSecret || c.SecretHash != "" {
			v.add(p+".token_endpoint_auth_method", "none is a public client without a secret; remove secret and secret_hash or use client_secret_basic")
		}
		if c.ClientCredentials {
			v.add(p+".client_credentials", "needs a confidential client (a secret)")
		}
		if c.AllowMissingPKCE {
			v.add(p+".allow_missing_pkce", "cannot be set for a public client: PKCE is its only protection")
		}
	case hasSecret && c.SecretHash != "":
		v.add(p+".secret_hash", "give either secret or secret_hash, not both")
	case hasSecret:
		if len(c.Secret.Value()) < minClientSecretBytes {
			v.add(p+".secret", "must be at least %d characters (got %d); generate one with: openssl rand -base64 48",
				minClientSecretBytes, len(c.Secret.Value()))
		}
	case c.SecretHash != "":
		if err := checkSecretHash(c.SecretHash); err != nil {
			v.add(p+".secret_hash", "%v", err)
		}
	case c.Secret.err == nil:
		v.add(p+".secret_hash", "is required for a confidential client (or secret, or token_endpoint_auth_method: none)")
	}

	if c.IDTokenSignedResponseAlg != "" {
		v.oneOf(p+".id_token_signed_response_alg", c.IDTokenSignedResponseAlg, OIDCSigningAlgs...)
	}

	appOK := v.oneOf(p+".application_type", c.AppType(), OIDCAppWeb, OIDCAppNative)
	if appOK && c.AppType() == OIDCAppNative && !c.IsPublic() && authOK {
		v.add(p+".application_type", "native applications cannot keep a secret; use token_endpoint_auth_method: none")
	}
	if len(c.RedirectURIs) == 0 && !c.ClientCredentials {
		v.add(p+".redirect_uris", "needs at least one URI (or client_credentials for a client without users)")
	}
	hosts := map[string]bool{}
	for i, raw := range c.RedirectURIs {
		path := fmt.Sprintf("%s.redirect_uris[%d]", p, i)
		if u := redirectURI(v, path, raw, c.AppType()); u != nil {
			hosts[u.Hostname()] = true
		}
	}
	for i, raw := range c.PostLogoutRedirectURIs {
		redirectURI(v, fmt.Sprintf("%s.post_logout_redirect_uris[%d]", p, i), raw, c.AppType())
	}
	logoutURI(v, p+".backchannel_logout_uri", c.BackchannelLogoutURI)
	logoutURI(v, p+".frontchannel_logout_uri", c.FrontchannelLogoutURI)

	for i, s := range c.Scopes {
		path := fmt.Sprintf("%s.scopes[%d]", p, i)
		switch {
		case s == "openid", s == "offline_access", claimScopes[s]:
		default:
			v.add(path, "%q is not a known scope: use openid, offline_access or a scope of oidc.claims", s)
		}
	}
	if len(c.Scopes) > 0 && len(c.RedirectURIs) > 0 && !slices.Contains(c.Scopes, "openid") {
		v.add(p+".scopes", "must include openid for a client that signs users in")
	}

	if v.oneOf(p+".subject_type", c.Subject(), OIDCSubjectPublic, OIDCSubjectPairwise) && c.Subject() == OIDCSubjectPairwise {
		if !hasSalt {
			v.add(p+".subject_type", "pairwise needs oidc.pairwise_salt")
		}
		if c.SectorIdentifier == "" && len(hosts) > 1 {
			v.add(p+".sector_identifier", "is required for pairwise subjects when the redirect URIs have different hosts")
		}
	}
	if c.SectorIdentifier != "" && !isHostname(strings.ToLower(c.SectorIdentifier)) {
		v.add(p+".sector_identifier", "must be a host name such as app.example.ac.jp (got %q)", c.SectorIdentifier)
	}
	v.oneOf(p+".access_token_format", c.TokenFormat(), OIDCTokenOpaque, OIDCTokenJWT)
}

// redirectURI checks one registered redirect URI. Web applications must
// use https except on the loopback interface; native applications may also
// use a private-use scheme (RFC 8252). It returns the parsed URI if usable.
func redirectURI(v *validator, path, raw, appType string) *url.URL {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Scheme == "" || !u.IsAbs():
		v.add(path, "must be an absolute URI (got %q)", raw)
		return nil
	case u.Fragment != "" || strings.Contains(raw, "#"):
		v.add(path, "must not contain a fragment (got %q)", raw)
		return nil
	case u.Scheme == "https":
		if u.Host == "" {
			v.add(path, "has no host (got %q)", raw)
			return nil
		}
	case u.Scheme == "http":
		if !isLoopbackHost(u.Hostname()) {
			v.add(path, "must use https:// (http:// only on 127.0.0.1, [::1] or localhost) (got %q)", raw)
			return nil
		}
	case appType == OIDCAppNative:
		// A private-use scheme such as jp.ac.example.app:/callback.
		if !strings.Contains(u.Scheme, ".") {
			v.add(path, "a native app's private-use scheme must be a reversed domain name such as jp.ac.example.app (got %q)", raw)
			return nil
		}
	default:
		v.add(path, "must use https:// (got %q)", raw)
		return nil
	}
	return u
}

// checkSecretHash accepts the bcrypt and argon2id hash formats the
// provider verifies, so a typo fails at startup instead of at every login.
func checkSecretHash(h string) error {
	switch {
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		cost, err := bcrypt.Cost([]byte(h))
		if err != nil {
			return fmt.Errorf("is not a valid bcrypt hash: %v", err)
		}
		if cost < 10 {
			return fmt.Errorf("bcrypt cost %d is too low; use at least 10", cost)
		}
		return nil
	case strings.HasPrefix(h, "$argon2id$"):
		// $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>
		parts := strings.Split(h, "$")
		if len(parts) != 6 || parts[2] != "v=19" || parts[4] == "" || parts[5] == "" {
			return fmt.Errorf("is not an argon2id hash of the form $argon2id$v=19$m=...,t=...,p=...$salt$hash")
		}
		for _, kv := range strings.Split(parts[3], ",") {
			k, val, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil || (k != "m" && k != "t" && k != "p") || n == 0 {
				return fmt.Errorf("has invalid argon2id parameters %q", parts[3])
			}
		}
		return nil
	}
	return fmt.Errorf("must be a bcrypt ($2b$...) or argon2id ($argon2id$...) hash")
}
