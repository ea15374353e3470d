package ldapstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Config describes how to reach and read the campus directory.
type Config struct {
	// URLs are ldap:// or ldaps:// server addresses, tried in order: the
	// first reachable one serves, the others are failovers.
	URLs []string

	// StartTLS upgrades ldap:// connections before anything is sent.
	StartTLS bool
	// CAFile is a PEM bundle of roots that server certificates must chain
	// to; empty means the system roots.
	CAFile string
	// InsecureSkipVerify disables certificate checks. For tests only.
	InsecureSkipVerify bool

	// BindDN and BindPassword are the read-only service account used for
	// searches. An empty BindDN searches anonymously.
	BindDN       string
	BindPassword string

	// UserBaseDN is where users are searched (subtree).
	UserBaseDN string
	// UserFilter finds one user; it must contain "{id}" exactly once, which
	// is replaced by the escaped login ID.
	UserFilter string
	// DisabledFilter, when set, marks users whose entry matches it as
	// disabled, e.g. "(employeeType=disabled)".
	DisabledFilter string
	// TimingDecoyDN, when set, is the entry unknown IDs bind against: one
	// with a password in the directory's own hash scheme that nobody
	// knows. Servers skip the (slow) hash for a DN that does not exist, so
	// without it time tells unknown IDs from known ones.
	TimingDecoyDN string

	Attributes Attributes
	Groups     Groups

	// PoolSize bounds the connections of each pool (service searches and
	// user binds are kept in separate pools). Default 8.
	PoolSize int
	// DialTimeout bounds connecting, TLS and the service bind. Default 5s.
	DialTimeout time.Duration
	// OperationTimeout bounds a single LDAP request. Default 5s.
	OperationTimeout time.Duration
	// IdleTimeout: pooled connections unused for longer are replaced by a
	// fresh dial, since firewalls and servers silently drop idle
	// connections. Default 5m.
	IdleTimeout time.Duration
}

// Attributes names the directory attributes mapped onto User.
type Attributes struct {
	ID            string   // default "uid"
	DisplayName   string   // default "displayName"
	DisplayNameJA string   // default "displayName;lang-ja"
	Mail          string   // default "mail"
	Extra         []string // further attributes copied into User.Attributes
}

// Group lookup modes.
const (
	GroupsMemberOf = "memberof" // read group DNs from an attribute of the user entry
	GroupsSearch   = "search"   // search group entries that name the user as member
	GroupsNone     = "none"     // do not resolve groups
)

// Groups configures how a user's group names are found.
type Groups struct {
	// Mode is GroupsMemberOf, GroupsSearch or GroupsNone (empty = none).
	Mode string
	// Attribute holds group DNs in memberof mode; the group name is the
	// value of the DN's first RDN. Default "memberOf".
	Attribute string
	// BaseDN is searched (subtree) in search mode.
	BaseDN string
	// Filter selects a user's groups in search mode; "{dn}" is replaced by
	// the escaped user DN. Default "(member={dn})".
	Filter string
	// NameAttribute of a group entry is its name in search mode. Default "cn".
	NameAttribute string
}

const (
	defaultPoolSize         = 8
	defaultDialTimeout      = 5 * time.Second
	defaultOperationTimeout = 5 * time.Second
	defaultIdleTimeout      = 5 * time.Minute

	// maxIDBytes bounds login IDs; real campus IDs are far shorter.
	maxIDBytes = 256
)

// server is one parsed entry of Config.URLs.
type server struct {
	url     string // as configured, for logs
	address string // host:port
	useTLS  bool   // ldaps://
	tls     *tls.Config
}

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	servers []server
}

// withDefaults returns cfg with empty optional fields filled in.
func withDefaults(cfg Config) Config {
	if cfg.Attributes.ID == "" {
		cfg.Attributes.ID = "uid"
	}
	if cfg.Attributes.DisplayName == "" {
		cfg.Attributes.DisplayName = "displayName"
	}
	if cfg.Attributes.DisplayNameJA == "" {
		cfg.Attributes.DisplayNameJA = "displayName;lang-ja"
	}
	if cfg.Attributes.Mail == "" {
		cfg.Attributes.Mail = "mail"
	}
	cfg.Groups.Mode = strings.ToLower(strings.TrimSpace(cfg.Groups.Mode))
	if cfg.Groups.Mode == "" {
		cfg.Groups.Mode = GroupsNone
	}
	if cfg.Groups.Attribute == "" {
		cfg.Groups.Attribute = "memberOf"
	}
	if cfg.Groups.Filter == "" {
		cfg.Groups.Filter = "(member={dn})"
	}
	if cfg.Groups.NameAttribute == "" {
		cfg.Groups.NameAttribute = "cn"
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = defaultPoolSize
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.OperationTimeout == 0 {
		cfg.OperationTimeout = defaultOperationTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	return cfg
}

// validate applies defaults and checks cfg, reporting every problem at once
// so an operator can fix a config file in one pass.
func validate(cfg Config) (*settings, error) {
	cfg = withDefaults(cfg)
	var problems []error
	add := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf(format, args...))
	}

	if len(cfg.URLs) == 0 {
		add("at least one URL is required")
	}
	if cfg.BindDN != "" && cfg.BindPassword == "" {
		add("BindPassword is required when BindDN is set")
	}
	if cfg.BindDN != "" {
		if _, err := ldap.ParseDN(cfg.BindDN); err != nil {
			add("BindDN %q is not a valid DN: %v", cfg.BindDN, err)
		}
	}
	if cfg.UserBaseDN == "" {
		add("UserBaseDN is required")
	} else if _, err := ldap.ParseDN(cfg.UserBaseDN); err != nil {
		add("UserBaseDN %q is not a valid DN: %v", cfg.UserBaseDN, err)
	}
	switch n := strings.Count(cfg.UserFilter, idPlaceholder); {
	case cfg.UserFilter == "":
		add("UserFilter is required")
	case n != 1:
		add("UserFilter %q must contain %s exactly once (found %d)", cfg.UserFilter, idPlaceholder, n)
	default:
		if _, err := ldap.CompileFilter(userFilter(cfg.UserFilter, "sample")); err != nil {
			add("UserFilter %q is not a valid LDAP filter: %v", cfg.UserFilter, err)
		}
	}
	if cfg.TimingDecoyDN != "" {
		if _, err := ldap.ParseDN(cfg.TimingDecoyDN); err != nil {
			add("TimingDecoyDN %q is not a valid DN: %v", cfg.TimingDecoyDN, err)
		}
	}
	if cfg.DisabledFilter != "" {
		if _, err := ldap.CompileFilter(cfg.DisabledFilter); err != nil {
			add("DisabledFilter %q is not a valid LDAP filter: %v", cfg.DisabledFilter, err)
		}
	}
	for _, a := range cfg.allUserAttributes() {
		if !validAttributeDescription(a) {
			add("attribute %q is not a valid attribute description", a)
		}
		if strings.EqualFold(strings.SplitN(a, ";", 2)[0], "userPassword") {
			// Even hashes must never reach logs, sessions or relying parties.
			add("attribute %q must not be fetched", a)
		}
	}

	switch cfg.Groups.Mode {
	case GroupsNone:
	case GroupsMemberOf:
		if !validAttributeDescription(cfg.Groups.Attribute) {
			add("Groups.Attribute %q is not a valid attribute description", cfg.Groups.Attribute)
		}
	case GroupsSearch:
		if cfg.Groups.BaseDN == "" {
			add("Groups.BaseDN is required in %q mode", GroupsSearch)
		} else if _, err := ldap.ParseDN(cfg.Groups.BaseDN); err != nil {
			add("Groups.BaseDN %q is not a valid DN: %v", cfg.Groups.BaseDN, err)
		}
		if !strings.Contains(cfg.Groups.Filter, dnPlaceholder) {
			add("Groups.Filter %q must contain %s", cfg.Groups.Filter, dnPlaceholder)
		} else if _, err := ldap.CompileFilter(groupFilter(cfg.Groups.Filter, "cn=sample")); err != nil {
			add("Groups.Filter %q is not a valid LDAP filter: %v", cfg.Groups.Filter, err)
		}
		if !validAttributeDescription(cfg.Groups.NameAttribute) {
			add("Groups.NameAttribute %q is not a valid attribute description", cfg.Groups.NameAttribute)
		}
	default:
		add("Groups.Mode %q is unknown (want %q, %q or %q)", cfg.Groups.Mode, GroupsMemberOf, GroupsSearch, GroupsNone)
	}

	if cfg.PoolSize < 1 {
		add("PoolSize must be positive, got %d", cfg.PoolSize)
	}
	for name, d := range map[string]time.Duration{
		"DialTimeout": cfg.DialTimeout, "OperationTimeout": cfg.OperationTimeout, "IdleTimeout": cfg.IdleTimeout,
	} {
		if d < 0 {
			add("%s must not be negative, got %s", name, d)
		}
	}

	var tlsConfig *tls.Config
	if len(cfg.URLs) > 0 {
		var err error
		tlsConfig, err = buildTLSConfig(cfg)
		if err != nil {
			problems = append(problems, err)
		}
	}
	var servers []server
	for _, raw := range cfg.URLs {
		s, err := parseServer(raw, cfg.StartTLS, tlsConfig)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		servers = append(servers, s)
	}

	if len(problems) > 0 {
		return nil, fmt.Errorf("ldapstore: invalid config: %w", errors.Join(problems...))
	}
	return &settings{Config: cfg, servers: servers}, nil
}

// buildTLSConfig returns the client TLS settings shared by ldaps:// and
// StartTLS. The CA file is read here so a bad path fails at start-up
// rather than at the first login.
func buildTLSConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // explicit opt-in, documented as test-only
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CAFile %s: no PEM certificates found", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// parseServer checks one URL and derives its dial address and TLS settings.
func parseServer(raw string, startTLS bool, base *tls.Config) (server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return server{}, fmt.Errorf("URL %q: %w", raw, err)
	}
	var port string
	switch strings.ToLower(u.Scheme) {
	case "ldap":
		port = "389"
	case "ldaps":
		if startTLS {
			return server{}, fmt.Errorf("URL %q: StartTLS cannot be combined with ldaps://", raw)
		}
		port = "636"
	default:
		return server{}, fmt.Errorf("URL %q: scheme must be ldap:// or ldaps://", raw)
	}
	host := u.Hostname()
	if host == "" {
		return server{}, fmt.Errorf("URL %q: host is missing", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return server{}, fmt.Errorf("URL %q: only scheme, host and port are allowed", raw)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	s := server{url: raw, address: net.JoinHostPort(host, port), useTLS: strings.EqualFold(u.Scheme, "ldaps")}
	// base is nil only when the TLS settings were already reported broken.
	if (s.useTLS || startTLS) && base != nil {
		s.tls = base.Clone()
		if s.tls.ServerName == "" {
			s.tls.ServerName = host
		}
	}
	return s, nil
}

// allUserAttributes lists the attributes requested for a user entry,
// without duplicates (compared case-insensitively, as LDAP does).
func (c Config) allUserAttributes() []string {
	names := []string{c.Attributes.ID, c.Attributes.DisplayName, c.Attributes.DisplayNameJA, c.Attributes.Mail}
	names = append(names, c.Attributes.Extra...)
	if c.Groups.Mode == GroupsMemberOf {
		names = append(names, c.Groups.Attribute)
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		dup := false
		for _, o := range out {
			if strings.EqualFold(o, n) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, n)
		}
	}
	return out
}

// validAttributeDescription accepts "name" or "name;option;..." where every
// part is a keystring or numeric OID (RFC 4512 section 2.5).
func validAttributeDescription(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ";") {
		if part == "" {
			return false
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				return false
			}
		}
	}
	return true
}
