package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// MinSecretKeyBytes is the shortest security.secret_key accepted.
const MinSecretKeyBytes = 32

// FieldError is one problem with one configuration key.
type FieldError struct {
	Path string // dotted key path, e.g. "ldap.urls[1]"
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Describe flattens an error from Parse, Load or Validate into one
// human-readable line per problem, in the order they were found.
func Describe(err error) []string {
	if err == nil {
		return nil
	}
	var lines []string
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			lines = append(lines, fe.Error())
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
			return
		case interface{ Unwrap() error }:
			// Keep a wrapper's own words (e.g. the file name from Load)
			// only when it wraps something other than a list of problems.
			if inner := u.Unwrap(); inner != nil {
				if _, isList := inner.(interface{ Unwrap() []error }); isList {
					walk(inner)
					return
				}
			}
		}
		lines = append(lines, err.Error())
	}
	walk(err)
	return lines
}

// Part is a piece of the IdP that a program embedding package idp may bring
// itself instead of configuring it here. Validate skips the sections of the
// parts it is told the program brings.
type Part int

const (
	// OwnDirectory: the program passes its own idp.Directory; the ldap
	// section is not used and not checked.
	OwnDirectory Part = iota + 1
	// OwnMailer: the program passes its own idp.Mailer; mail.from,
	// mail.transport and mail.smtp are not used and not checked.
	OwnMailer
	// OwnStore: the program passes its own idp.Store (and session store);
	// the store section is not used and not checked.
	OwnStore
)

// Embedded lists the parts idp.New always receives from the program
// rather than from the config: the directory, the mailer and the store.
// idp.New validates with them; the idp binary validates everything.
var Embedded = []Part{OwnDirectory, OwnMailer, OwnStore}

// Validate checks every setting and returns all problems found, joined with
// errors.Join, each a *FieldError. It returns nil for a usable config.
// Sections of the parts named in own are skipped: a program that brings its
// own directory needs no ldap.urls, one with its own mailer no mail.from.
func (c *Config) Validate(own ...Part) error {
	brings := func(p Part) bool { return slices.Contains(own, p) }
	v := &validator{}
	c.Server.validate(v, "server")
	c.Branding.validate(v, "branding")
	if !brings(OwnDirectory) {
		c.LDAP.validate(v, "ldap")
	}
	if !brings(OwnStore) {
		c.Store.validate(v, "store")
	}
	c.Session.validate(v, "session")
	c.Security.validate(v, "security")
	if !brings(OwnMailer) {
		c.Mail.validate(v, "mail")
	}
	c.MFA.validate(v, "mfa")
	c.Log.validate(v, "log")
	c.SAML.validate(v, "saml")
	c.Admin.validate(v, "admin")
	c.OIDC.validate(v, "oidc")
	c.Metrics.validate(v, "metrics")
	c.Audit.validate(v, "audit")
	c.Consent.validate(v, "consent")
	c.Logout.validate(v, "logout")
	c.validateRPID(v)
	return errors.Join(v.errs...)
}

// validateRPID checks that browsers will accept the WebAuthn RP ID on
// this site: the public host itself or a parent domain of it.
func (c *Config) validateRPID(v *validator) {
	if !c.MFA.WebAuthn.Enabled && (c.OIDC.ACR.PhishingResistant != "" || c.OIDC.ACR.Methods.WebAuthn != "") {
		v.add("oidc.acr.phishing_resistant", "needs mfa.webauthn.enabled: no login could satisfy it")
	}
	rp := c.MFA.WebAuthn.RPID
	u, err := url.Parse(c.Server.PublicURL)
	if rp == "" || !isHostname(rp) || err != nil || u.Hostname() == "" {
		return
	}
	if host := strings.ToLower(u.Hostname()); host != rp && !strings.HasSuffix(host, "."+rp) {
		v.add("mfa.webauthn.rp_id", "must be the host of server.public_url (%s) or a parent domain of it (got %q)", host, rp)
	}
}

type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// required reports an empty value and says whether the value is present.
func (v *validator) required(path, value string) bool {
	if strings.TrimSpace(value) == "" {
		v.add(path, "is required")
		return false
	}
	return true
}

// duration requires 0 < d <= maxD and says whether d is acceptable.
func (v *validator) duration(path string, d, maxD time.Duration) bool {
	switch {
	case d <= 0:
		v.add(path, "must be greater than 0 (got %s)", formatDuration(d))
		return false
	case d > maxD:
		v.add(path, "must be at most %s (got %s)", formatDuration(maxD), formatDuration(d))
		return false
	}
	return true
}

func (v *validator) intRange(path string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(path, "must be between %d and %d (got %d)", lo, hi, n)
	}
}

func (v *validator) oneOf(path, value string, allowed ...string) bool {
	for _, a := range allowed {
		if value == a {
			return true
		}
	}
	v.add(path, "must be one of %s (got %q)", strings.Join(allowed, ", "), value)
	return false
}

func (v *validator) budget(path string, b Budget, maxWindow time.Duration) {
	if b.Limit < 1 {
		v.add(path+".limit", "must be at least 1 (got %d)", b.Limit)
	}
	v.duration(path+".window", b.Window, maxWindow)
}

// secret reports an unresolvable secret and, if required, a missing one.
func (v *validator) secret(path string, s Secret, required bool) bool {
	if s.err != nil {
		v.add(path, "%v", s.err)
		return false
	}
	if required && !s.IsSet() {
		v.add(path, "is required")
		return false
	}
	return s.IsSet()
}

func (v *validator) localized(path string, l Localized) {
	v.required(path+".ja", l.JA)
	v.required(path+".en", l.EN)
}

// webURL checks an optional absolute http(s) link.
func (v *validator) webURL(path, raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(path, "must be an absolute http:// or https:// URL (got %q)", raw)
	}
}

// bareAddress checks that raw is a plain e-mail address with no display name.
func (v *validator) bareAddress(path, raw string) {
	if !v.required(path, raw) {
		return
	}
	addr, err := mail.ParseAddress(raw)
	switch {
	case err != nil:
		v.add(path, "is not a valid e-mail address (%q)", raw)
	case addr.Name != "" || addr.Address != strings.TrimSpace(raw):
		v.add(path, "must be a bare address such as idp@example.ac.jp, without a display name (got %q)", raw)
	}
}

func (s Server) validate(v *validator, p string) {
	if v.required(p+".listen", s.Listen) {
		_, port, err := net.SplitHostPort(s.Listen)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			v.add(p+".listen", "must be host:port such as \":8080\" or \"127.0.0.1:8080\" (got %q)", s.Listen)
		}
	}
	if v.required(p+".public_url", s.PublicURL) {
		validatePublicURL(v, p+".public_url", s.PublicURL)
	}
	for i, cidr := range s.TrustedProxies {
		path := fmt.Sprintf("%s.trusted_proxies[%d]", p, i)
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			if addr, aerr := netip.ParseAddr(cidr); aerr == nil {
				v.add(path, "%q is an address, not a CIDR; write %s/%d", cidr, addr, addr.BitLen())
			} else {
				v.add(path, "%q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", cidr)
			}
			continue
		}
		if prefix.Masked() != prefix {
			v.add(path, "%q has bits set past the prefix length; did you mean %s?", cidr, prefix.Masked())
		}
	}
	v.duration(p+".read_timeout", s.ReadTimeout, time.Hour)
	v.duration(p+".write_timeout", s.WriteTimeout, time.Hour)
	v.duration(p+".idle_timeout", s.IdleTimeout, time.Hour)
	v.duration(p+".shutdown_timeout", s.ShutdownTimeout, time.Hour)
	if s.ShutdownDelay < 0 || s.ShutdownDelay > 10*time.Minute {
		v.add(p+".shutdown_delay", "must be between 0s and 10m (got %s)", s.ShutdownDelay)
	}
}

func validatePublicURL(v *validator, path, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.add(path, "is not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(path, "must start with https:// (got %q)", raw)
	case u.Host == "" || u.Opaque != "":
		v.add(path, "must be an absolute URL with a host, such as https://idp.example.ac.jp (got %q)", raw)
	case u.User != nil:
		v.add(path, "must not contain user information")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		v.add(path, "must not have a query or fragment; it is the OIDC issuer (got %q)", raw)
	case strings.HasSuffix(u.Path, "/"):
		v.add(path, "must not end with \"/\"; it is the OIDC issuer and is compared byte for byte (got %q)", raw)
	}
}

func (b Branding) validate(v *validator, p string) {
	v.localized(p+".org_name", b.OrgName)
	v.localized(p+".system_name", b.SystemName)
	v.localized(p+".support_name", b.SupportName)
	v.required(p+".helpdesk_phone", b.HelpdeskPhone)
	v.localized(p+".helpdesk_hours", b.HelpdeskHours)
	v.webURL(p+".forgot_password_url", b.ForgotPasswordURL)
	v.webURL(p+".help_url", b.HelpURL)
	v.webURL(p+".inquiry_url", b.InquiryURL)
	if b.LogoFile != "" {
		validateLogoFile(v, p+".logo_file", b.LogoFile)
	}
	v.color(p+".colors.header", b.Colors.Header)
	v.color(p+".colors.accent", b.Colors.Accent)
}

// MaxLogoBytes bounds branding.logo_file: it is held in memory and sent
// with every page's header image.
const MaxLogoBytes = 256 << 10

// LogoTypes maps the accepted logo file extensions to their content types.
var LogoTypes = map[string]string{".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}

func validateLogoFile(v *validator, path, file string) {
	if _, ok := LogoTypes[strings.ToLower(filepath.Ext(file))]; !ok {
		v.add(path, "must be a .png, .jpg or .svg file (got %q)", file)
		return
	}
	fi, err := os.Stat(file)
	switch {
	case err != nil:
		v.add(path, "cannot be read: %v", err)
	case fi.IsDir():
		v.add(path, "is a directory, not an image file (%s)", file)
	case fi.Size() > MaxLogoBytes:
		v.add(path, "is %d bytes; at most %d", fi.Size(), MaxLogoBytes)
	}
}

var hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// color requires a #rrggbb colour: it is written into a stylesheet, so
// nothing else may get through.
func (v *validator) color(path, c string) {
	if !hexColor.MatchString(c) {
		v.add(path, "must be a colour written #rrggbb, such as #0b3d6e (got %q)", c)
	}
}

func (l LDAP) validate(v *validator, p string) {
	if len(l.URLs) == 0 {
		v.add(p+".urls", "needs at least one ldap:// or ldaps:// URL")
	}
	for i, raw := range l.URLs {
		path := fmt.Sprintf("%s.urls[%d]", p, i)
		u, err := url.Parse(raw)
		switch {
		case err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "":
			v.add(path, "must be ldap://host[:port] or ldaps://host[:port] (got %q)", raw)
		case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			v.add(path, "must name only a server, without user, DN, query or fragment (got %q)", raw)
		case u.Scheme == "ldaps" && l.StartTLS:
			v.add(path, "ldaps:// is TLS already and cannot be combined with ldap.start_tls")
		}
		if err == nil && u.Port() != "" {
			if n, perr := strconv.Atoi(u.Port()); perr != nil || n < 1 || n > 65535 {
				v.add(path, "has an invalid port %q", u.Port())
			}
		}
	}
	if l.CAFile != "" {
		validateCAFile(v, p+".ca_file", l.CAFile)
	}
	if l.TimingDecoyDN != "" {
		if _, err := ldap.ParseDN(l.TimingDecoyDN); err != nil {
			v.add(p+".timing_decoy_dn", "is not a valid DN: %v", err)
		}
	}
	if v.required(p+".id_pattern", l.IDPattern) {
		switch _, err := regexp.Compile(l.IDPattern); {
		case err != nil:
			v.add(p+".id_pattern", "is not a valid regular expression: %v", err)
		case !strings.HasPrefix(l.IDPattern, "^") || !strings.HasSuffix(l.IDPattern, "$"):
			// An unanchored pattern would admit any ID that merely contains a match.
			v.add(p+".id_pattern", "must be anchored with ^ at the start and $ at the end (got %q)", l.IDPattern)
		}
	}

	hasPassword := v.secret(p+".bind_password", l.BindPassword, false)
	switch {
	case l.BindDN != "":
		if _, err := ldap.ParseDN(l.BindDN); err != nil {
			v.add(p+".bind_dn", "is not a valid DN: %v", err)
		}
		if !hasPassword && l.BindPassword.err == nil {
			v.add(p+".bind_password", "is required when ldap.bind_dn is set")
		}
	case hasPassword:
		v.add(p+".bind_dn", "is required when ldap.bind_password is set")
	}

	if v.required(p+".user_base_dn", l.UserBaseDN) {
		if _, err := ldap.ParseDN(l.UserBaseDN); err != nil {
			v.add(p+".user_base_dn", "is not a valid DN: %v", err)
		}
	}
	if v.required(p+".user_filter", l.UserFilter) {
		if n := strings.Count(l.UserFilter, FilterIDPlaceholder); n != 1 {
			v.add(p+".user_filter", "must contain %s exactly once (found %d)", FilterIDPlaceholder, n)
		} else {
			validateFilter(v, p+".user_filter", l.UserFilter)
		}
	}
	if l.DisabledFilter != "" {
		validateFilter(v, p+".disabled_filter", l.DisabledFilter)
	}
	l.Attributes.validate(v, p+".attributes")
	l.Groups.validate(v, p+".groups")
	v.intRange(p+".pool_size", l.PoolSize, 1, 1024)
	v.duration(p+".dial_timeout", l.DialTimeout, time.Minute)
	v.duration(p+".operation_timeout", l.OperationTimeout, 5*time.Minute)
	v.duration(p+".idle_timeout", l.IdleTimeout, 24*time.Hour)
}

func validateCAFile(v *validator, path, file string) {
	pem, err := os.ReadFile(file)
	if err != nil {
		v.add(path, "cannot be read: %v", err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		v.add(path, "contains no PEM certificate (%s)", file)
	}
}

// validateFilter compiles filter with sample values in its placeholders, as
// the directory code will see it at run time.
func validateFilter(v *validator, path, filter string) {
	sample := strings.NewReplacer(
		FilterIDPlaceholder, ldap.EscapeFilter("sample-id"),
		FilterDNPlaceholder, ldap.EscapeFilter("uid=sample-id,ou=people,dc=example,dc=ac,dc=jp"),
	).Replace(filter)
	if _, err := ldap.CompileFilter(sample); err != nil {
		v.add(path, "is not a valid LDAP filter (%q): %v", filter, err)
	}
}

// attributeName matches an LDAP attribute description: a name or OID with
// optional ";option" parts such as ";lang-ja" (RFC 4512 section 2.5).
var attributeName = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*$`)

func (v *validator) attribute(path, name string, required bool) {
	if name == "" {
		if required {
			v.add(path, "is required")
		}
		return
	}
	if !attributeName.MatchString(name) {
		v.add(path, "is not an LDAP attribute name (got %q)", name)
	}
}

func (a LDAPAttributes) validate(v *validator, p string) {
	v.attribute(p+".id", a.ID, true)
	v.attribute(p+".display_name", a.DisplayName, true)
	v.attribute(p+".display_name_ja", a.DisplayNameJA, false)
	v.attribute(p+".mail", a.Mail, true)
	seen := make(map[string]int, len(a.Extra))
	for i, name := range a.Extra {
		path := fmt.Sprintf("%s.extra[%d]", p, i)
		v.attribute(path, name, true)
		key := strings.ToLower(name) // attribute names are case-insensitive
		if first, dup := seen[key]; dup {
			v.add(path, "repeats extra[%d] (%q)", first, name)
		} else {
			seen[key] = i
		}
	}
}

func (g LDAPGroups) validate(v *validator, p string) {
	if !v.oneOf(p+".mode", g.Mode, GroupsMemberOf, GroupsSearch, GroupsNone) {
		return
	}
	switch g.Mode {
	case GroupsMemberOf:
		v.attribute(p+".attribute", g.Attribute, true)
		v.attribute(p+".name_attribute", g.NameAttribute, true)
	case GroupsSearch:
		if v.required(p+".base_dn", g.BaseDN) {
			if _, err := ldap.ParseDN(g.BaseDN); err != nil {
				v.add(p+".base_dn", "is not a valid DN: %v", err)
			}
		}
		if v.required(p+".filter", g.Filter) {
			if !strings.Contains(g.Filter, FilterDNPlaceholder) && !strings.Contains(g.Filter, FilterIDPlaceholder) {
				v.add(p+".filter", "must contain %s (the user's DN) or %s (the user's ID)", FilterDNPlaceholder, FilterIDPlaceholder)
			} else {
				validateFilter(v, p+".filter", g.Filter)
			}
		}
		v.attribute(p+".name_attribute", g.NameAttribute, true)
	}
}

func (s Store) validate(v *validator, p string) {
	driverOK := v.oneOf(p+".driver", s.Driver, StoreSQLite, StorePostgres)
	if !v.secret(p+".dsn", s.DSN, true) || !driverOK {
		return
	}
	if s.Driver == StorePostgres {
		dsn := s.DSN.Value()
		if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") && !strings.Contains(dsn, "=") {
			// Never echo the DSN: it may carry a password.
			v.add(p+".dsn", "must be a PostgreSQL connection string (postgres://... or key=value ...) when store.driver is postgres")
		}
	}
}

func (s Session) validate(v *validator, p string) {
	if v.required(p+".cookie_name", s.CookieName) && !isCookieName(s.CookieName) {
		v.add(p+".cookie_name", "may contain only letters, digits and !#$%%&'*+-.^_`|~ (got %q)", s.CookieName)
	}
	idleOK := v.duration(p+".idle_timeout", s.IdleTimeout, 24*time.Hour)
	absOK := v.duration(p+".absolute_timeout", s.AbsoluteTimeout, 30*24*time.Hour)
	if idleOK && absOK && s.IdleTimeout > s.AbsoluteTimeout {
		v.add(p+".idle_timeout", "must not exceed session.absolute_timeout (%s > %s)",
			formatDuration(s.IdleTimeout), formatDuration(s.AbsoluteTimeout))
	}
	s.validateBackend(v, p)
}

// isCookieName reports whether name is an RFC 6265 token.
func isCookieName(name string) bool {
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return name != ""
}

func (s Security) validate(v *validator, p string) {
	if v.secret(p+".secret_key", s.SecretKey, true) && len(s.SecretKey.Value()) < MinSecretKeyBytes {
		v.add(p+".secret_key", "must be at least %d bytes (got %d); generate one with: openssl rand -base64 48",
			MinSecretKeyBytes, len(s.SecretKey.Value()))
	}
	v.duration(p+".login_tx_lifetime", s.LoginTxLifetime, 2*time.Hour)
	v.duration(p+".remember_id_lifetime", s.RememberIDLifetime, 366*24*time.Hour)
	v.duration(p+".device_cookie_lifetime", s.DeviceCookieLifetime, 366*24*time.Hour)
	v.budget(p+".password_budget.per_client", s.PasswordBudget.PerClient, 24*time.Hour)
	v.budget(p+".password_budget.per_id", s.PasswordBudget.PerID, 24*time.Hour)
	v.budget(p+".password_budget.per_ip", s.PasswordBudget.PerIP, 24*time.Hour)
	pi := s.PasswordBudget.PerID
	if pi.Limit > 100 {
		// NIST SP 800-63B: at most 100 consecutive failures per account.
		v.add(p+".password_budget.per_id.limit", "must be at most 100 (got %d)", pi.Limit)
	}
}

func (m Mail) validate(v *validator, p string) {
	v.bareAddress(p+".from", m.From)
	// The display name goes into a mail header: no line breaks.
	if strings.ContainsAny(m.FromName.JA, "\r\n") {
		v.add(p+".from_name.ja", "must be a single line")
	}
	if strings.ContainsAny(m.FromName.EN, "\r\n") {
		v.add(p+".from_name.en", "must be a single line")
	}
	transportOK := v.oneOf(p+".transport", m.Transport, TransportSMTP, TransportLog)
	m.SMTP.validate(v, p+".smtp", transportOK && m.Transport == TransportSMTP)
}

func (s SMTP) validate(v *validator, p string, inUse bool) {
	switch {
	case s.Host == "":
		if inUse {
			v.add(p+".host", "is required when mail.transport is smtp")
		}
	case !isHostname(strings.ToLower(s.Host)) && !isIPAddress(s.Host):
		v.add(p+".host", "is not a host name or IP address (got %q)", s.Host)
	}
	v.intRange(p+".port", s.Port, 1, 65535)
	v.oneOf(p+".tls", s.TLS, SMTPStartTLS, SMTPTLS, SMTPNoTLS)
	hasPassword := v.secret(p+".password", s.Password, false)
	switch {
	case s.Username != "" && !hasPassword && s.Password.err == nil:
		v.add(p+".password", "is required when mail.smtp.username is set")
	case s.Username == "" && hasPassword:
		v.add(p+".username", "is required when mail.smtp.password is set")
	}
	v.duration(p+".timeout", s.Timeout, 5*time.Minute)
}

func (m MFA) validate(v *validator, p string) {
	v.oneOf(p+".enrollment", m.Enrollment, EnrollmentRequired, EnrollmentOptional)
	m.Email.validate(v, p+".email")
	v.duration(p+".trusted_browser_lifetime", m.TrustedBrowserLifetime, 366*24*time.Hour)
	m.WebAuthn.validate(v, p+".webauthn")
}

var aaguidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func (w WebAuthn) validate(v *validator, p string) {
	v.oneOf(p+".user_verification", w.UserVerification, "preferred", "required", "discouraged")
	if w.RPID != "" && !isHostname(w.RPID) {
		v.add(p+".rp_id", "is not a lower-case domain name such as example.ac.jp (got %q)", w.RPID)
	}
	for i, id := range w.AllowedAAGUIDs {
		if !aaguidPattern.MatchString(id) {
			v.add(fmt.Sprintf("%s.allowed_aaguids[%d]", p, i), "is not a lower-case AAGUID such as cb69481e-8ff7-4039-93ec-0a2729a154a8 (got %q)", id)
		}
	}
	v.intRange(p+".max_credentials", w.MaxCredentials, 1, 100)
	if v.duration(p+".timeout", w.Timeout, time.Hour) && w.Timeout < 30*time.Second {
		v.add(p+".timeout", "must be at least 30s (got %s)", formatDuration(w.Timeout))
	}
	if w.Passwordless && !w.Enabled {
		v.add(p+".passwordless", "needs mfa.webauthn.enabled")
	}
}

func (e EmailOTP) validate(v *validator, p string) {
	v.intRange(p+".code_digits", e.CodeDigits, 6, 10)
	lifetimeOK := v.duration(p+".code_lifetime", e.CodeLifetime, time.Hour)
	v.intRange(p+".max_tries_per_code", e.MaxTriesPerCode, 1, 10)
	v.budget(p+".failure_budget", e.FailureBudget, 24*time.Hour)
	v.intRange(p+".account_failure_limit", e.AccountFailureLimit, max(1, e.FailureBudget.Limit), 100)
	if v.duration(p+".resend_cooldown", e.ResendCooldown, time.Hour) && lifetimeOK && e.ResendCooldown > e.CodeLifetime {
		v.add(p+".resend_cooldown", "must not exceed mfa.email.code_lifetime (%s > %s), or a user could be left waiting with no valid code",
			formatDuration(e.ResendCooldown), formatDuration(e.CodeLifetime))
	}
	v.intRange(p+".sends_per_hour", e.SendsPerHour, 1, 100)
	v.intRange(p+".max_outstanding_codes", e.MaxOutstandingCodes, 1, 10)
	v.duration(p+".reset_code_lifetime", e.ResetCodeLifetime, 24*time.Hour)
	v.duration(p+".reset_grant_lifetime", e.ResetGrantLifetime, time.Hour)
	for i, d := range e.BlockedDomains {
		path := fmt.Sprintf("%s.blocked_domains[%d]", p, i)
		switch {
		case d != strings.ToLower(d):
			v.add(path, "must be lower-case (got %q)", d)
		case !isHostname(d):
			v.add(path, "is not a domain name such as example.ac.jp (got %q)", d)
		}
	}
	v.bareAddress(p+".placeholder_address", e.PlaceholderAddress)
}

func (l Log) validate(v *validator, p string) {
	v.oneOf(p+".level", l.Level, "debug", "info", "warn", "error")
	v.oneOf(p+".format", l.Format, LogJSON, LogText)
}

// isHostname reports whether h is a lower-case DNS host name (letters,
// digits and inner hyphens per label; internationalised names in xn-- form).
func isHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}

func isIPAddress(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// formatDuration prints durations the way they are written in the file
// ("1h", "15m") rather than time.Duration's "1h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Warnings lists settings that are valid but weaken security or are meant
// for development only. check-config prints them; serve logs them.
func (c *Config) Warnings() []string {
	var w []string
	if c.LDAP.InsecureSkipVerify {
		w = append(w, "ldap.insecure_skip_verify: the directory's TLS certificate is not verified; passwords can be intercepted")
	}
	if !c.LDAP.StartTLS {
		for i, raw := range c.LDAP.URLs {
			if strings.HasPrefix(raw, "ldap://") {
				w = append(w, fmt.Sprintf("ldap.urls[%d]: plain ldap:// without start_tls sends passwords unencrypted", i))
			}
		}
	}
	if u, err := url.Parse(c.Server.PublicURL); err == nil && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		w = append(w, "server.public_url: http:// outside localhost; browsers will not send Secure cookies over it")
	}
	if c.Mail.Transport == TransportLog {
		w = append(w, "mail.transport: log delivers no mail; for development only")
	}
	if c.Mail.Transport == TransportSMTP {
		if c.Mail.SMTP.TLS == SMTPNoTLS && c.Mail.SMTP.Password.IsSet() {
			w = append(w, "mail.smtp.tls: none with a password sends the SMTP password unencrypted")
		}
		switch {
		case c.Mail.SMTP.Port == 465 && c.Mail.SMTP.TLS == SMTPStartTLS:
			w = append(w, "mail.smtp.tls: port 465 normally expects tls (implicit TLS), not starttls")
		case (c.Mail.SMTP.Port == 587 || c.Mail.SMTP.Port == 25) && c.Mail.SMTP.TLS == SMTPTLS:
			w = append(w, fmt.Sprintf("mail.smtp.tls: port %d normally expects starttls, not tls", c.Mail.SMTP.Port))
		}
	}
	if c.MFA.Enrollment == EnrollmentOptional {
		w = append(w, "mfa.enrollment: optional lets users without a second factor log in with a password alone")
	}
	w = append(w, c.SAML.warnings()...)
	w = append(w, c.campusWarnings()...)
	if len(c.OIDC.Clients) > 0 { // no relying party, nothing released
		w = append(w, c.claimWarnings()...)
	}
	return w
}

// campusWarnings are settings a campus gets wrong without being told
// (issue 14): each says what goes wrong and the fix.
func (c *Config) campusWarnings() []string {
	var w []string
	if u, err := url.Parse(c.Server.PublicURL); err == nil && u.Scheme == "https" && len(c.Server.TrustedProxies) == 0 {
		w = append(w, "server.trusted_proxies: empty with an https public URL; if a proxy or load balancer terminates TLS, every user shares its address in the budgets and the audit log: list its addresses")
	}
	if len(c.MFA.Email.BlockedDomains) == 0 {
		if own := c.campusDomains(); len(own) > 0 {
			w = append(w, fmt.Sprintf("mfa.email.blocked_domains: empty, so university addresses can be registered for the mailed code; add the campus's mail domains, e.g. [%s]", strings.Join(own, ", ")))
		}
	}
	if c.Branding.ForgotPasswordURL == "" {
		w = append(w, "branding.forgot_password_url: unset, so the login page shows no \"Forgot your password?\" link: set it to the password-reset page")
	}
	if c.Branding.HelpURL == "" {
		w = append(w, "branding.help_url: unset, so the login page shows no \"Need Help?\" link: set it to the user manual")
	}
	return w
}

// campusDomains are the campus's own domains as the config knows them: the
// sender's domain and the SAML scope.
func (c *Config) campusDomains() []string {
	var out []string
	add := func(d string) {
		d = strings.ToLower(strings.TrimSpace(d))
		if d != "" && strings.Contains(d, ".") && !strings.HasSuffix(d, "localdomain") && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	if at := strings.LastIndex(c.Mail.From, "@"); at >= 0 {
		add(strings.TrimSuffix(c.Mail.From[at+1:], ">"))
	}
	add(c.SAML.Scope)
	return out
}

func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}
