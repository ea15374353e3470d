package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const testSecretKey = "0123456789abcdef0123456789abcdef-test"

// requiredYAML sets exactly the keys that have no default.
const requiredYAML = `
server:
  public_url: "https://idp.example.ac.jp"
ldap:
  urls: ["ldaps://ldap.example.ac.jp"]
  user_base_dn: "ou=people,dc=example,dc=ac,dc=jp"
security:
  secret_key: "` + testSecretKey + `"
mail:
  from: "ninsho-qa@idp.example.ac.jp"
  smtp:
    host: "smtp.example.ac.jp"
`

// validConfig is Default() with the required fields filled in.
func validConfig() Config {
	c := Default()
	c.Server.PublicURL = "https://idp.example.ac.jp"
	c.LDAP.URLs = []string{"ldaps://ldap.example.ac.jp"}
	c.LDAP.UserBaseDN = "ou=people,dc=example,dc=ac,dc=jp"
	c.Security.SecretKey = SecretValue(testSecretKey)
	c.Mail.From = "ninsho-qa@idp.example.ac.jp"
	c.Mail.SMTP.Host = "smtp.example.ac.jp"
	return c
}

// fieldErrors returns the *FieldErrors inside err.
func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range u.Unwrap() {
				walk(inner)
			}
			return
		}
		if inner := errors.Unwrap(e); inner != nil {
			walk(inner)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

func errorPaths(t *testing.T, err error) []string {
	t.Helper()
	var paths []string
	for _, fe := range fieldErrors(t, err) {
		paths = append(paths, fe.Path)
	}
	sort.Strings(paths)
	return paths
}

// expectValidation checks a Validate result: no error when wantPath is
// empty, else an error at wantPath mentioning wantMsg (and, when only, no
// other error).
func expectValidation(t *testing.T, err error, wantPath, wantMsg string, only bool) {
	t.Helper()
	if wantPath == "" {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		return
	}
	fe := findFieldError(t, err, wantPath)
	if fe == nil {
		t.Fatalf("no error at %s; got %v", wantPath, err)
	}
	if !strings.Contains(fe.Msg, wantMsg) {
		t.Errorf("%s: %q does not mention %q", wantPath, fe.Msg, wantMsg)
	}
	if n := len(fieldErrors(t, err)); only && n != 1 {
		t.Errorf("%d errors, want 1: %v", n, err)
	}
}

func findFieldError(t *testing.T, err error, path string) *FieldError {
	t.Helper()
	for _, fe := range fieldErrors(t, err) {
		if fe.Path == path {
			return fe
		}
	}
	return nil
}

func TestDefaultsValidOnceRequiredFieldsSet(t *testing.T) {
	tests := []struct {
		name      string
		cfg       func() Config
		wantPaths []string
	}{
		{
			name: "defaults alone lack only the required fields",
			cfg:  Default,
			wantPaths: []string{
				"ldap.urls", "ldap.user_base_dn", "mail.from", "mail.smtp.host",
				"security.secret_key", "server.public_url",
			},
		},
		{name: "required fields set", cfg: validConfig},
		{
			name: "log transport needs no smtp host",
			cfg: func() Config {
				c := validConfig()
				c.Mail.Transport = TransportLog
				c.Mail.SMTP.Host = ""
				return c
			},
		},
		{
			name: "secret key from the environment",
			cfg: func() Config {
				t.Setenv("CONFIG_TEST_KEY", testSecretKey)
				c := validConfig()
				c.Security.SecretKey = SecretFromEnv("CONFIG_TEST_KEY")
				return c
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg()
			err := cfg.Validate()
			if got := errorPaths(t, err); !slices.Equal(got, tt.wantPaths) {
				t.Fatalf("error paths = %q, want %q\nerr: %v", got, tt.wantPaths, err)
			}
		})
	}
}

func TestParseRequiredOnlyKeepsDefaults(t *testing.T) {
	cfg, err := Parse([]byte(requiredYAML))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := validConfig()
	// Compare secrets by value; the rest structurally.
	if cfg.Security.SecretKey.Value() != want.Security.SecretKey.Value() {
		t.Errorf("secret_key value differs")
	}
	cfg.Security.SecretKey, want.Security.SecretKey = Secret{}, Secret{}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Parse(required keys) = %+v\nwant %+v", cfg, want)
	}
}

func TestExampleConfigParsesAndValidates(t *testing.T) {
	t.Setenv("IDP_SECRET_KEY", testSecretKey)
	t.Setenv("IDP_LDAP_BIND_PASSWORD", "bind-password")
	t.Setenv("IDP_SMTP_PASSWORD", "smtp-password")

	cfg, err := Load(filepath.Join("..", "config.example.yaml"))
	if err != nil {
		t.Fatalf("config.example.yaml: %v\n%s", err, strings.Join(Describe(err), "\n"))
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("example config has warnings: %q", w)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"secret_key from env", cfg.Security.SecretKey.Value(), testSecretKey},
		{"secret_key source", cfg.Security.SecretKey.Source(), "env IDP_SECRET_KEY"},
		{"bind password from env", cfg.LDAP.BindPassword.Value(), "bind-password"},
		{"smtp password from env", cfg.Mail.SMTP.Password.Value(), "smtp-password"},
		{"blocked domains", cfg.MFA.Email.BlockedDomains, []string{"st.kyoto-u.ac.jp", "kyoto-u.ac.jp", "ms.c.kyoto-u.ac.jp"}},
		{"placeholder", cfg.MFA.Email.PlaceholderAddress, "id00000000@mail2.adm.example.ac.jp"},
		{"failure budget", cfg.MFA.Email.FailureBudget, Budget{Limit: 10, Window: time.Hour}},
		{"account failure limit", cfg.MFA.Email.AccountFailureLimit, 100},
		{"ldap urls", cfg.LDAP.URLs, []string{"ldaps://ldap1.example.ac.jp", "ldaps://ldap2.example.ac.jp"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

// TestExampleConfigShowsDefaults guards the promise that the example states
// the defaults: apart from the deliberate site-specific values listed here,
// it must decode to Default().
func TestExampleConfigShowsDefaults(t *testing.T) {
	t.Setenv("IDP_SECRET_KEY", testSecretKey)
	t.Setenv("IDP_LDAP_BIND_PASSWORD", "bind-password")
	t.Setenv("IDP_SMTP_PASSWORD", "smtp-password")
	cfg, err := Load(filepath.Join("..", "config.example.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Default()
	want.Server.PublicURL = cfg.Server.PublicURL
	want.Server.TrustedProxies = cfg.Server.TrustedProxies
	want.LDAP.URLs = cfg.LDAP.URLs
	want.LDAP.BindDN = cfg.LDAP.BindDN
	want.LDAP.BindPassword = cfg.LDAP.BindPassword
	want.LDAP.UserBaseDN = cfg.LDAP.UserBaseDN
	want.LDAP.Attributes.Extra = cfg.LDAP.Attributes.Extra
	want.Store.DSN = cfg.Store.DSN
	want.Security.SecretKey = cfg.Security.SecretKey
	want.Mail.From = cfg.Mail.From
	want.Mail.FromName = cfg.Mail.FromName
	want.Mail.SMTP.Host = cfg.Mail.SMTP.Host
	want.Mail.SMTP.Username = cfg.Mail.SMTP.Username
	want.Mail.SMTP.Password = cfg.Mail.SMTP.Password
	want.MFA.Email.BlockedDomains = cfg.MFA.Email.BlockedDomains
	want.Branding.ForgotPasswordURL = cfg.Branding.ForgotPasswordURL
	want.Branding.HelpURL = cfg.Branding.HelpURL
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("example differs from Default() beyond site values:\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.Store.DSN.Value() != Default().Store.DSN.Value() {
		t.Errorf("store.dsn = %q, want the default", cfg.Store.DSN.Value())
	}
}

func TestParseRejectsUnknownKeys(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantPath string
		wantLine string
		wantHint string
	}{
		{
			name:     "top level",
			yaml:     requiredYAML + "serverr:\n  listen: \":80\"\n",
			wantPath: "serverr",
			wantLine: "line 13",
			wantHint: `did you mean "server"?`,
		},
		{
			name:     "nested section",
			yaml:     requiredYAML + "log:\n  level: info\n  colour: true\n",
			wantPath: "log.colour",
			wantLine: "line 15",
		},
		{
			name: "deeply nested struct",
			yaml: requiredYAML + `session:
  cookie_name: x
store:
  driver: sqlite
mfa:
  email:
    failure_budget:
      limt: 3
`,
			wantPath: "mfa.email.failure_budget.limt",
			wantLine: "line 20",
			wantHint: `did you mean "limit"?`,
		},
		{
			name:     "inside ldap attributes",
			yaml:     strings.Replace(requiredYAML, "  urls:", "  attributes: {mial: mail}\n  urls:", 1),
			wantPath: "ldap.attributes.mial",
			wantLine: "line 5",
			wantHint: `did you mean "mail"?`,
		},
		{
			name:     "inside a merge key",
			yaml:     requiredYAML + "session:\n  <<: {idle_timout: 1m}\n",
			wantPath: "session.idle_timout",
			wantLine: "line 14",
			wantHint: `did you mean "idle_timeout"?`,
		},
		{
			name:     "inside a secret mapping",
			yaml:     requiredYAML + "store:\n  dsn: {envv: DSN}\n",
			wantPath: "store.dsn",
			wantLine: "line 14",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse accepted an unknown key")
			}
			fe := findFieldError(t, err, tt.wantPath)
			if fe == nil {
				t.Fatalf("no error for %s; got %v", tt.wantPath, err)
			}
			for _, want := range []string{tt.wantLine, "unknown key", tt.wantHint} {
				if !strings.Contains(fe.Msg, want) {
					t.Errorf("message %q lacks %q", fe.Msg, want)
				}
			}
		})
	}
}

func TestParseStructuralErrors(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantPath string // "" when the error is not about one key
		wantMsg  string
	}{
		{"duration without unit", requiredYAML + "session:\n  idle_timeout: 30\n", "session.idle_timeout", "not a duration"},
		{"duration garbage", requiredYAML + "session:\n  idle_timeout: soon\n", "session.idle_timeout", "line 14"},
		{"int from text", strings.Replace(requiredYAML, "  urls:", "  pool_size: many\n  urls:", 1), "ldap.pool_size", "whole number"},
		{"int from float", requiredYAML + "mfa:\n  email:\n    code_digits: 6.5\n", "mfa.email.code_digits", "whole number"},
		{"int from quoted", requiredYAML + "mfa:\n  email:\n    code_digits: \"8\"\n", "mfa.email.code_digits", "whole number"},
		{"bool from text", strings.Replace(requiredYAML, "  urls:", "  start_tls: maybe\n  urls:", 1), "ldap.start_tls", "true or false"},
		{"scalar for list", strings.Replace(requiredYAML, `urls: ["ldaps://ldap.example.ac.jp"]`, `urls: "ldaps://ldap.example.ac.jp"`, 1), "ldap.urls", "list"},
		{"list for section", requiredYAML + "log: [info]\n", "log", "mapping"},
		{"mapping in list", strings.Replace(requiredYAML, "  urls:", "  attributes: {extra: [{a: b}]}\n  urls:", 1), "ldap.attributes.extra[0]", "not a string"},
		{"secret env and file", requiredYAML + "store:\n  dsn: {env: A, file: /b}\n", "store.dsn", "not both"},
		{"secret env empty", requiredYAML + "store:\n  dsn: {env: \"\"}\n", "store.dsn", "non-empty"},
		{"secret as list", requiredYAML + "store:\n  dsn: [a]\n", "store.dsn", "{env: NAME}"},
		{"duplicate key", requiredYAML + "log:\n  level: info\n  level: debug\n", "log.level", "duplicate key (first given at line 14)"},
		{"second document", requiredYAML + "---\nlog: {}\n", "", "single document"},
		{"top level list", "- server\n", "", "top level must be a mapping"},
		{"broken yaml", "server: {listen: \n", "", "parse config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if tt.wantPath == "" {
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("error %q lacks %q", err, tt.wantMsg)
				}
				return
			}
			fe := findFieldError(t, err, tt.wantPath)
			if fe == nil {
				t.Fatalf("no error for %s; got %v", tt.wantPath, err)
			}
			if !strings.Contains(fe.Msg, tt.wantMsg) {
				t.Errorf("message %q lacks %q", fe.Msg, tt.wantMsg)
			}
		})
	}
}

func TestParseReportsEveryStructuralProblem(t *testing.T) {
	doc := requiredYAML + `
log:
  levl: info
  format: [json]
session:
  idle_timeout: 5
  cookie: x
`
	_, err := Parse([]byte(doc))
	want := []string{"log.format", "log.levl", "session.cookie", "session.idle_timeout"}
	if got := errorPaths(t, err); !slices.Equal(got, want) {
		t.Fatalf("paths = %q, want %q\n%v", got, want, err)
	}
}

func TestParseOverlaysDefaults(t *testing.T) {
	doc := `
server:
  public_url: "https://idp.example.ac.jp"
ldap:
  urls: ["ldaps://ldap.example.ac.jp"]
  user_base_dn: "ou=people,dc=example,dc=ac,dc=jp"
security:
  secret_key: "` + testSecretKey + `"
  login_tx_lifetime: &life 10m
  password_budget:
    per_id: {limit: 3}
session:
  <<: {idle_timeout: 10m}
  absolute_timeout: *life
mail:
  from: "ninsho-qa@idp.example.ac.jp"
  smtp: {host: "smtp.example.ac.jp"}
log:
branding:
  org_name: {en: "Campus"}
`
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	def := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"per_id.limit set", cfg.Security.PasswordBudget.PerID.Limit, 3},
		{"per_id.window kept", cfg.Security.PasswordBudget.PerID.Window, def.Security.PasswordBudget.PerID.Window},
		{"per_ip kept", cfg.Security.PasswordBudget.PerIP, def.Security.PasswordBudget.PerIP},
		{"null log section keeps defaults", cfg.Log, def.Log},
		{"org_name.en set", cfg.Branding.OrgName.EN, "Campus"},
		{"org_name.ja kept", cfg.Branding.OrgName.JA, def.Branding.OrgName.JA},
		{"anchor", cfg.Security.LoginTxLifetime, 10 * time.Minute},
		{"alias", cfg.Session.AbsoluteTimeout, 10 * time.Minute},
		{"merge key", cfg.Session.IdleTimeout, 10 * time.Minute},
		{"cookie name kept", cfg.Session.CookieName, def.Session.CookieName},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestParseEmptyDocumentReportsRequiredFields(t *testing.T) {
	for _, doc := range []string{"", "# only a comment\n", "---\n", "~\n"} {
		_, err := Parse([]byte(doc))
		want := []string{"ldap.urls", "ldap.user_base_dn", "mail.from", "mail.smtp.host", "security.secret_key", "server.public_url"}
		if got := errorPaths(t, err); !slices.Equal(got, want) {
			t.Errorf("Parse(%q) paths = %q, want %q", doc, got, want)
		}
	}
}

func TestParseBlockedDomainsNormalized(t *testing.T) {
	doc := requiredYAML + "mfa:\n  email:\n    blocked_domains: [\"@ST.Kyoto-U.ac.jp\", \" example.ac.jp \"]\n"
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []string{"st.kyoto-u.ac.jp", "example.ac.jp"}
	if !slices.Equal(cfg.MFA.Email.BlockedDomains, want) {
		t.Errorf("blocked_domains = %q, want %q", cfg.MFA.Email.BlockedDomains, want)
	}
}

// TestValidateReportsEveryProblem feeds one config with many unrelated
// mistakes and expects each of them, with its path, in a single error.
func TestValidateReportsEveryProblem(t *testing.T) {
	t.Setenv("CONFIG_TEST_EMPTY", "")
	doc := `
server:
  listen: "8080"
  public_url: "https://idp.example.ac.jp/?next=1"
  trusted_proxies: ["10.0.0.0/8", "10.0.0.1", "banana"]
ldap:
  urls: ["ldaps://ok.example.ac.jp", "http://ldap.example.ac.jp"]
  user_base_dn: "ou=people,dc=example,dc=ac,dc=jp"
  user_filter: "(uid=*)"
  pool_size: 0
security:
  secret_key: {env: CONFIG_TEST_EMPTY}
  password_budget:
    per_ip: {limit: 0, window: -1m}
session:
  idle_timeout: 13h
  absolute_timeout: 12h
store:
  driver: mysql
mail:
  from: "not an address"
  transport: smtp
  smtp:
    tls: ssl
mfa:
  enrollment: sometimes
  email:
    code_digits: 4
    code_lifetime: 2h
    blocked_domains: ["ok.example.ac.jp", "bad_domain!"]
log:
  level: verbose
  format: xml
`
	_, err := Parse([]byte(doc))
	want := []string{
		"ldap.pool_size",
		"ldap.urls[1]",
		"ldap.user_filter",
		"log.format",
		"log.level",
		"mail.from",
		"mail.smtp.host",
		"mail.smtp.tls",
		"mfa.email.blocked_domains[1]",
		"mfa.email.code_digits",
		"mfa.email.code_lifetime",
		"mfa.enrollment",
		"security.password_budget.per_ip.limit",
		"security.password_budget.per_ip.window",
		"security.secret_key",
		"server.listen",
		"server.public_url",
		"server.trusted_proxies[1]",
		"server.trusted_proxies[2]",
		"session.idle_timeout",
		"store.driver",
	}
	if got := errorPaths(t, err); !slices.Equal(got, want) {
		t.Fatalf("paths =\n%q\nwant\n%q\nerr:\n%s", got, want, strings.Join(Describe(err), "\n"))
	}
	lines := Describe(err)
	if len(lines) != len(want) {
		t.Errorf("Describe gave %d lines, want %d", len(lines), len(want))
	}
	for _, line := range lines {
		path, msg, ok := strings.Cut(line, ": ")
		if !ok || path == "" || msg == "" {
			t.Errorf("Describe line %q is not \"path: message\"", line)
		}
	}
}

func TestValidateRules(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	writeTestCA(t, caFile)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		mutate   func(*Config)
		wantPath string // "" = valid
		wantMsg  string
	}{
		{"http public_url allowed", func(c *Config) { c.Server.PublicURL = "http://localhost:8080" }, "", ""},
		{"public_url with path allowed", func(c *Config) { c.Server.PublicURL = "https://sso.example.ac.jp/idp" }, "", ""},
		{"public_url relative", func(c *Config) { c.Server.PublicURL = "/idp" }, "server.public_url", "https://"},
		{"public_url other scheme", func(c *Config) { c.Server.PublicURL = "ftp://idp.example.ac.jp" }, "server.public_url", "https://"},
		{"public_url no host", func(c *Config) { c.Server.PublicURL = "https:///x" }, "server.public_url", "host"},
		{"public_url fragment", func(c *Config) { c.Server.PublicURL = "https://idp.example.ac.jp#x" }, "server.public_url", "fragment"},
		{"public_url empty query", func(c *Config) { c.Server.PublicURL = "https://idp.example.ac.jp?" }, "server.public_url", "query"},
		{"public_url trailing slash", func(c *Config) { c.Server.PublicURL = "https://idp.example.ac.jp/" }, "server.public_url", `"/"`},
		{"public_url user info", func(c *Config) { c.Server.PublicURL = "https://a:b@idp.example.ac.jp" }, "server.public_url", "user"},
		{"listen host:port", func(c *Config) { c.Server.Listen = "127.0.0.1:0" }, "", ""},
		{"listen bad port", func(c *Config) { c.Server.Listen = ":http" }, "server.listen", "host:port"},
		{"listen empty", func(c *Config) { c.Server.Listen = "" }, "server.listen", "required"},
		{"trusted proxy v6", func(c *Config) { c.Server.TrustedProxies = []string{"2001:db8::/32"} }, "", ""},
		{"trusted proxy host bits", func(c *Config) { c.Server.TrustedProxies = []string{"10.1.2.3/8"} }, "server.trusted_proxies[0]", "10.0.0.0/8"},
		{"trusted proxy bare ip", func(c *Config) { c.Server.TrustedProxies = []string{"10.1.2.3"} }, "server.trusted_proxies[0]", "10.1.2.3/32"},
		{"server timeout zero", func(c *Config) { c.Server.WriteTimeout = 0 }, "server.write_timeout", "greater than 0"},
		{"shutdown too long", func(c *Config) { c.Server.ShutdownTimeout = 2 * time.Hour }, "server.shutdown_timeout", "at most 1h"},

		{"branding en missing", func(c *Config) { c.Branding.SystemName.EN = "" }, "branding.system_name.en", "required"},
		{"branding ja missing", func(c *Config) { c.Branding.HelpdeskHours.JA = " " }, "branding.helpdesk_hours.ja", "required"},
		{"helpdesk phone missing", func(c *Config) { c.Branding.HelpdeskPhone = "" }, "branding.helpdesk_phone", "required"},
		{"help url relative", func(c *Config) { c.Branding.HelpURL = "help.html" }, "branding.help_url", "absolute"},
		{"inquiry url ok", func(c *Config) { c.Branding.InquiryURL = "https://www.example.ac.jp/inquiry/?q=idp" }, "", ""},

		{"ldap no urls", func(c *Config) { c.LDAP.URLs = nil }, "ldap.urls", "at least one"},
		{"ldap plain with starttls", func(c *Config) { c.LDAP.URLs = []string{"ldap://ldap.example.ac.jp:389"}; c.LDAP.StartTLS = true }, "", ""},
		{"ldaps with starttls", func(c *Config) { c.LDAP.StartTLS = true }, "ldap.urls[0]", "start_tls"},
		{"ldap url with dn", func(c *Config) { c.LDAP.URLs = []string{"ldap://h/dc=example"} }, "ldap.urls[0]", "only a server"},
		{"ldap url bad port", func(c *Config) { c.LDAP.URLs = []string{"ldaps://h:99999"} }, "ldap.urls[0]", "port"},
		{"ldap url no host", func(c *Config) { c.LDAP.URLs = []string{"ldaps://"} }, "ldap.urls[0]", "ldaps://host"},
		{"ca file ok", func(c *Config) { c.LDAP.CAFile = caFile }, "", ""},
		{"ca file missing", func(c *Config) { c.LDAP.CAFile = filepath.Join(dir, "missing.pem") }, "ldap.ca_file", "cannot be read"},
		{"ca file not pem", func(c *Config) { c.LDAP.CAFile = notPEM }, "ldap.ca_file", "no PEM certificate"},
		{"insecure skip verify is not an error", func(c *Config) { c.LDAP.InsecureSkipVerify = true }, "", ""},
		{"bind dn without password", func(c *Config) { c.LDAP.BindDN = "cn=idp,dc=example" }, "ldap.bind_password", "required when ldap.bind_dn"},
		{"bind password without dn", func(c *Config) { c.LDAP.BindPassword = SecretValue("pw") }, "ldap.bind_dn", "required when ldap.bind_password"},
		{"bind dn invalid", func(c *Config) { c.LDAP.BindDN = "idp"; c.LDAP.BindPassword = SecretValue("pw") }, "ldap.bind_dn", "not a valid DN"},
		{"base dn invalid", func(c *Config) { c.LDAP.UserBaseDN = "people" }, "ldap.user_base_dn", "not a valid DN"},
		{"user filter twice", func(c *Config) { c.LDAP.UserFilter = "(|(uid={id})(mail={id}))" }, "ldap.user_filter", "exactly once (found 2)"},
		{"user filter unbalanced", func(c *Config) { c.LDAP.UserFilter = "(&(uid={id})" }, "ldap.user_filter", "not a valid LDAP filter"},
		{"user filter without parentheses", func(c *Config) { c.LDAP.UserFilter = "uid={id}" }, "ldap.user_filter", "not a valid LDAP filter"},
		{"disabled filter bad", func(c *Config) { c.LDAP.DisabledFilter = "(pwdLocked=*" }, "ldap.disabled_filter", "not a valid LDAP filter"},
		{"disabled filter ok", func(c *Config) { c.LDAP.DisabledFilter = "(pwdAccountLockedTime=*)" }, "", ""},
		{"attribute bad", func(c *Config) { c.LDAP.Attributes.Mail = "e mail" }, "ldap.attributes.mail", "attribute name"},
		{"attribute oid ok", func(c *Config) { c.LDAP.Attributes.ID = "0.9.2342.19200300.100.1.1" }, "", ""},
		{"display_name_ja may be empty", func(c *Config) { c.LDAP.Attributes.DisplayNameJA = "" }, "", ""},
		{"attribute id empty", func(c *Config) { c.LDAP.Attributes.ID = "" }, "ldap.attributes.id", "required"},
		{"extra duplicate", func(c *Config) { c.LDAP.Attributes.Extra = []string{"ou", "OU"} }, "ldap.attributes.extra[1]", "repeats extra[0]"},
		{"groups mode bad", func(c *Config) { c.LDAP.Groups.Mode = "nested" }, "ldap.groups.mode", "memberof, search, none"},
		{"groups search needs base", func(c *Config) { c.LDAP.Groups.Mode = GroupsSearch }, "ldap.groups.base_dn", "required"},
		{"groups search ok", func(c *Config) {
			c.LDAP.Groups.Mode = GroupsSearch
			c.LDAP.Groups.BaseDN = "ou=groups,dc=example"
			c.LDAP.Groups.Filter = "(memberUid={id})"
		}, "", ""},
		{"groups search filter without placeholder", func(c *Config) {
			c.LDAP.Groups.Mode = GroupsSearch
			c.LDAP.Groups.BaseDN = "ou=groups,dc=example"
			c.LDAP.Groups.Filter = "(objectClass=group)"
		}, "ldap.groups.filter", "{dn}"},
		{"groups none ignores attribute", func(c *Config) { c.LDAP.Groups.Mode = GroupsNone; c.LDAP.Groups.Attribute = "" }, "", ""},
		{"pool size too large", func(c *Config) { c.LDAP.PoolSize = 5000 }, "ldap.pool_size", "between 1 and 1024"},
		{"ldap dial timeout negative", func(c *Config) { c.LDAP.DialTimeout = -time.Second }, "ldap.dial_timeout", "greater than 0"},
		{"timing decoy dn bad", func(c *Config) { c.LDAP.TimingDecoyDN = "not a dn" }, "ldap.timing_decoy_dn", "not a valid DN"},
		{"timing decoy dn ok", func(c *Config) { c.LDAP.TimingDecoyDN = "cn=timing-decoy,ou=system,dc=example" }, "", ""},
		{"id pattern empty", func(c *Config) { c.LDAP.IDPattern = "" }, "ldap.id_pattern", "required"},
		{"id pattern bad", func(c *Config) { c.LDAP.IDPattern = "^[a-z$" }, "ldap.id_pattern", "not a valid regular expression"},
		{"id pattern unanchored", func(c *Config) { c.LDAP.IDPattern = "[a-z0-9]+" }, "ldap.id_pattern", "anchored"},

		{"postgres with url", func(c *Config) { c.Store.Driver = StorePostgres; c.Store.DSN = SecretValue("postgres://u:p@db/idp") }, "", ""},
		{"postgres with keywords", func(c *Config) { c.Store.Driver = StorePostgres; c.Store.DSN = SecretValue("host=db dbname=idp") }, "", ""},
		{"postgres with sqlite path", func(c *Config) { c.Store.Driver = StorePostgres }, "store.dsn", "PostgreSQL connection string"},
		{"dsn empty", func(c *Config) { c.Store.DSN = Secret{} }, "store.dsn", "required"},

		{"cookie name bad", func(c *Config) { c.Session.CookieName = "idp session" }, "session.cookie_name", "only letters"},
		{"cookie name host prefix", func(c *Config) { c.Session.CookieName = "__Host-idp" }, "", ""},
		{"session idle equals absolute", func(c *Config) { c.Session.IdleTimeout = 12 * time.Hour }, "", ""},
		{"session absolute too long", func(c *Config) { c.Session.AbsoluteTimeout = 1000 * time.Hour }, "session.absolute_timeout", "at most 720h"},

		{"secret key short", func(c *Config) { c.Security.SecretKey = SecretValue("short") }, "security.secret_key", "at least 32 bytes"},
		{"login tx zero", func(c *Config) { c.Security.LoginTxLifetime = 0 }, "security.login_tx_lifetime", "greater than 0"},
		{"per id limit zero", func(c *Config) { c.Security.PasswordBudget.PerID.Limit = 0 }, "security.password_budget.per_id.limit", "at least 1"},
		{"per id limit above NIST", func(c *Config) { c.Security.PasswordBudget.PerID.Limit = 101 }, "security.password_budget.per_id.limit", "at most 100"},
		{"per client limit zero", func(c *Config) { c.Security.PasswordBudget.PerClient.Limit = 0 }, "security.password_budget.per_client.limit", "at least 1"},
		{"client auth budget zero", func(c *Config) { c.OIDC.ClientAuthBudget.PerIP.Limit = 0 }, "oidc.client_auth_budget.per_ip.limit", "at least 1"},
		{"device cookie lifetime zero", func(c *Config) { c.Security.DeviceCookieLifetime = 0 }, "security.device_cookie_lifetime", "greater than 0"},

		{"from with display name", func(c *Config) { c.Mail.From = "IdP <idp@example.ac.jp>" }, "mail.from", "bare address"},
		{"from name two lines", func(c *Config) { c.Mail.FromName.EN = "IdP\r\nBcc: x@y" }, "mail.from_name.en", "single line"},
		{"transport bad", func(c *Config) { c.Mail.Transport = "sendmail" }, "mail.transport", "smtp, log"},
		{"smtp host ip", func(c *Config) { c.Mail.SMTP.Host = "127.0.0.1" }, "", ""},
		{"smtp host upper case", func(c *Config) { c.Mail.SMTP.Host = "SMTP.Example.ac.jp" }, "", ""},
		{"smtp host bad", func(c *Config) { c.Mail.SMTP.Host = "smtp example" }, "mail.smtp.host", "host name"},
		{"smtp port zero", func(c *Config) { c.Mail.SMTP.Port = 0 }, "mail.smtp.port", "between 1 and 65535"},
		{"smtp user without password", func(c *Config) { c.Mail.SMTP.Username = "idp" }, "mail.smtp.password", "required when mail.smtp.username"},
		{"smtp password without user", func(c *Config) { c.Mail.SMTP.Password = SecretValue("pw") }, "mail.smtp.username", "required when mail.smtp.password"},
		{"smtp timeout too long", func(c *Config) { c.Mail.SMTP.Timeout = time.Hour }, "mail.smtp.timeout", "at most 5m"},

		{"digits 10 ok", func(c *Config) { c.MFA.Email.CodeDigits = 10 }, "", ""},
		{"digits 11", func(c *Config) { c.MFA.Email.CodeDigits = 11 }, "mfa.email.code_digits", "between 6 and 10"},
		{"code lifetime 1h ok", func(c *Config) { c.MFA.Email.CodeLifetime = time.Hour }, "", ""},
		{"max tries zero", func(c *Config) { c.MFA.Email.MaxTriesPerCode = 0 }, "mfa.email.max_tries_per_code", "between 1 and 10"},
		{"failure window zero", func(c *Config) { c.MFA.Email.FailureBudget.Window = 0 }, "mfa.email.failure_budget.window", "greater than 0"},
		{"account failure limit 100 ok", func(c *Config) { c.MFA.Email.AccountFailureLimit = 100 }, "", ""},
		{"account failure limit above NIST", func(c *Config) { c.MFA.Email.AccountFailureLimit = 101 }, "mfa.email.account_failure_limit", "between 10 and 100"},
		{"account failure limit below session budget", func(c *Config) { c.MFA.Email.AccountFailureLimit = 9 }, "mfa.email.account_failure_limit", "between 10 and 100"},
		{"cooldown beyond code lifetime", func(c *Config) { c.MFA.Email.ResendCooldown = 11 * time.Minute }, "mfa.email.resend_cooldown", "code_lifetime (11m > 10m)"},
		{"sends per hour zero", func(c *Config) { c.MFA.Email.SendsPerHour = 0 }, "mfa.email.sends_per_hour", "between 1 and 100"},
		{"outstanding codes zero", func(c *Config) { c.MFA.Email.MaxOutstandingCodes = 0 }, "mfa.email.max_outstanding_codes", "between 1 and 10"},
		{"reset grant too long", func(c *Config) { c.MFA.Email.ResetGrantLifetime = 2 * time.Hour }, "mfa.email.reset_grant_lifetime", "at most 1h"},
		{"reset code zero", func(c *Config) { c.MFA.Email.ResetCodeLifetime = 0 }, "mfa.email.reset_code_lifetime", "greater than 0"},
		{"blocked domain upper case", func(c *Config) { c.MFA.Email.BlockedDomains = []string{"Example.ac.jp"} }, "mfa.email.blocked_domains[0]", "lower-case"},
		{"blocked domain with at", func(c *Config) { c.MFA.Email.BlockedDomains = []string{"@example.ac.jp"} }, "mfa.email.blocked_domains[0]", "domain name"},
		{"blocked domain trailing hyphen", func(c *Config) { c.MFA.Email.BlockedDomains = []string{"example-.ac.jp"} }, "mfa.email.blocked_domains[0]", "domain name"},
		{"blocked domain punycode", func(c *Config) { c.MFA.Email.BlockedDomains = []string{"xn--u9j.example.jp"} }, "", ""},
		{"placeholder missing", func(c *Config) { c.MFA.Email.PlaceholderAddress = "" }, "mfa.email.placeholder_address", "required"},
		{"placeholder masked style ok", func(c *Config) { c.MFA.Email.PlaceholderAddress = "id*****@mail2.adm.example.ac.jp" }, "", ""},
		{"trusted browser too long", func(c *Config) { c.MFA.TrustedBrowserLifetime = 10000 * time.Hour }, "mfa.trusted_browser_lifetime", "at most 8784h"},
		{"enrollment optional ok", func(c *Config) { c.MFA.Enrollment = EnrollmentOptional }, "", ""},
		{"webauthn rp id parent domain ok", func(c *Config) { c.MFA.WebAuthn.RPID = "example.ac.jp" }, "", ""},
		{"webauthn rp id other site", func(c *Config) { c.MFA.WebAuthn.RPID = "evil.example" }, "mfa.webauthn.rp_id", "parent domain"},
		{"webauthn rp id suffix not a label", func(c *Config) { c.MFA.WebAuthn.RPID = "p.example.ac.jp" }, "mfa.webauthn.rp_id", "parent domain"},
		{"webauthn rp id not a host", func(c *Config) { c.MFA.WebAuthn.RPID = "https://idp.example.ac.jp" }, "mfa.webauthn.rp_id", "domain name"},
		{"webauthn uv bad", func(c *Config) { c.MFA.WebAuthn.UserVerification = "always" }, "mfa.webauthn.user_verification", "preferred, required, discouraged"},
		{"webauthn aaguid bad", func(c *Config) { c.MFA.WebAuthn.AllowedAAGUIDs = []string{"CB69481E-8FF7-4039-93EC-0A2729A154A8"} }, "mfa.webauthn.allowed_aaguids[0]", "AAGUID"},
		{"webauthn aaguid ok", func(c *Config) { c.MFA.WebAuthn.AllowedAAGUIDs = []string{"cb69481e-8ff7-4039-93ec-0a2729a154a8"} }, "", ""},
		{"webauthn max credentials zero", func(c *Config) { c.MFA.WebAuthn.MaxCredentials = 0 }, "mfa.webauthn.max_credentials", "between 1 and 100"},
		{"webauthn timeout short", func(c *Config) { c.MFA.WebAuthn.Timeout = time.Second }, "mfa.webauthn.timeout", "at least 30s"},
		{"webauthn passwordless without factor", func(c *Config) { c.MFA.WebAuthn.Enabled = false; c.MFA.WebAuthn.Passwordless = true }, "mfa.webauthn.passwordless", "needs mfa.webauthn.enabled"},
		{"acr phishing resistant equals mfa", func(c *Config) { c.OIDC.ACR.PhishingResistant = c.OIDC.ACR.MFA }, "oidc.acr.phishing_resistant", "must differ"},
		{"acr phishing resistant without keys", func(c *Config) {
			c.OIDC.ACR.PhishingResistant = "https://example.ac.jp/acr/phr"
			c.MFA.WebAuthn.Enabled = false
		}, "oidc.acr.phishing_resistant", "needs mfa.webauthn.enabled"},
		{"acr phishing resistant ok", func(c *Config) { c.OIDC.ACR.PhishingResistant = "https://example.ac.jp/acr/phr" }, "", ""},

		{"log text debug ok", func(c *Config) { c.Log = Log{Level: "debug", Format: LogText} }, "", ""},
		{"log level upper case", func(c *Config) { c.Log.Level = "INFO" }, "log.level", "debug, info, warn, error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.wantPath == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			paths := errorPaths(t, err)
			if !slices.Equal(paths, []string{tt.wantPath}) {
				t.Fatalf("paths = %q, want only %q\n%v", paths, tt.wantPath, err)
			}
			if fe := findFieldError(t, err, tt.wantPath); !strings.Contains(fe.Msg, tt.wantMsg) {
				t.Errorf("message %q lacks %q", fe.Msg, tt.wantMsg)
			}
		})
	}
}

func writeTestCA(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "config test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(requiredYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(requiredYAML+"log: {level: loud}\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := Load(good); err != nil {
		t.Errorf("Load(good): %v", err)
	}

	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}

	_, err = Load(bad)
	if !strings.Contains(err.Error(), bad) {
		t.Errorf("Load(bad) error %q does not name the file", err)
	}
	if got := Describe(err); !slices.Equal(got, []string{`log.level: must be one of debug, info, warn, error (got "loud")`}) {
		t.Errorf("Describe(Load(bad)) = %q", got)
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"nil", nil, nil},
		{"plain error", errors.New("boom"), []string{"boom"}},
		{"one field", &FieldError{Path: "a.b", Msg: "bad"}, []string{"a.b: bad"}},
		{"joined", errors.Join(&FieldError{Path: "a", Msg: "x"}, &FieldError{Path: "b", Msg: "y"}), []string{"a: x", "b: y"}},
		{"wrapped join", errorsWrap(errors.Join(&FieldError{Path: "a", Msg: "x"}, errors.New("z"))), []string{"a: x", "z"}},
		{"wrapped plain", errorsWrap(errors.New("disk")), []string{"context: disk"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Describe(tt.err); !slices.Equal(got, tt.want) {
				t.Errorf("Describe = %q, want %q", got, tt.want)
			}
		})
	}
}

type wrapped struct{ inner error }

func (w wrapped) Error() string { return "context: " + w.inner.Error() }
func (w wrapped) Unwrap() error { return w.inner }

func errorsWrap(err error) error { return wrapped{err} }

func TestBlocksAddress(t *testing.T) {
	e := EmailOTP{BlockedDomains: []string{"kyoto-u.ac.jp", "ms.c.example.jp"}}
	tests := []struct {
		addr string
		want bool
	}{
		{"user@kyoto-u.ac.jp", true},
		{"user@st.kyoto-u.ac.jp", true},
		{"user@ST.Kyoto-U.AC.JP", true},
		{"user@kyoto-u.ac.jp.", true},
		{"user@notkyoto-u.ac.jp", false},
		{"user@kyoto-u.ac.jp.evil.example", false},
		{"user@ms.c.example.jp", true},
		{"user@c.example.jp", false},
		{"user@gmail.com", false},
		{"no-at-sign", false},
	}
	for _, tt := range tests {
		if got := e.BlocksAddress(tt.addr); got != tt.want {
			t.Errorf("BlocksAddress(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // prefixes of the expected warnings, in order
	}{
		{"none by default", func(*Config) {}, nil},
		{"insecure skip verify", func(c *Config) { c.LDAP.InsecureSkipVerify = true }, []string{"ldap.insecure_skip_verify"}},
		{"plain ldap", func(c *Config) { c.LDAP.URLs = []string{"ldaps://a", "ldap://b"} }, []string{"ldap.urls[1]"}},
		{"plain ldap with starttls", func(c *Config) { c.LDAP.URLs = []string{"ldap://b"}; c.LDAP.StartTLS = true }, nil},
		{"http public url", func(c *Config) { c.Server.PublicURL = "http://idp.example.ac.jp" }, []string{"server.public_url"}},
		{"http localhost", func(c *Config) { c.Server.PublicURL = "http://127.0.0.1:8080" }, nil},
		{"log transport", func(c *Config) { c.Mail.Transport = TransportLog }, []string{"mail.transport"}},
		{"smtp password in clear", func(c *Config) {
			c.Mail.SMTP.TLS = SMTPNoTLS
			c.Mail.SMTP.Username = "u"
			c.Mail.SMTP.Password = SecretValue("p")
		}, []string{"mail.smtp.tls: none"}},
		{"465 with starttls", func(c *Config) { c.Mail.SMTP.Port = 465 }, []string{"mail.smtp.tls: port 465"}},
		{"587 with tls", func(c *Config) { c.Mail.SMTP.TLS = SMTPTLS }, []string{"mail.smtp.tls: port 587"}},
		{"optional enrollment", func(c *Config) { c.MFA.Enrollment = EnrollmentOptional }, []string{"mfa.enrollment"}},
		{"https without trusted proxies", func(c *Config) { c.Server.TrustedProxies = nil }, []string{"server.trusted_proxies"}},
		{"campus domains not blocked", func(c *Config) { c.MFA.Email.BlockedDomains = nil }, []string{"mfa.email.blocked_domains"}},
		{"no manual links", func(c *Config) { c.Branding.ForgotPasswordURL, c.Branding.HelpURL = "", "" },
			[]string{"branding.forgot_password_url", "branding.help_url"}},
		// Item 8: the default claims with a client warn nothing; only a
		// claim the directory can never fill does.
		{"default claims with a client", func(c *Config) { c.OIDC.Clients = []OIDCClient{{ID: "rp"}} }, nil},
		{"groups claim without groups", func(c *Config) {
			c.OIDC.Clients = []OIDCClient{{ID: "rp"}}
			c.LDAP.Groups.Mode = GroupsNone
		}, []string{"oidc.claims[4]: \"groups\""}},
		{"name#ja without the attribute", func(c *Config) {
			c.OIDC.Clients = []OIDCClient{{ID: "rp"}}
			c.LDAP.Attributes.DisplayNameJA = ""
		}, []string{"oidc.claims[2]: \"name#ja\""}},
		{"no client, no claim warning", func(c *Config) { c.LDAP.Groups.Mode = GroupsNone }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			// What a campus must set or be told about (issue 14, item 9).
			cfg.Server.TrustedProxies = []string{"10.0.0.0/24"}
			cfg.MFA.Email.BlockedDomains = []string{"example.ac.jp"}
			cfg.Branding.ForgotPasswordURL = "https://www.example.ac.jp/password/"
			cfg.Branding.HelpURL = "https://www.example.ac.jp/help/"
			tt.mutate(&cfg)
			got := cfg.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("Warnings = %q, want %d starting %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("warning %q does not start with %q", got[i], tt.want[i])
				}
			}
		})
	}
}

func TestServerTrustedProxyPrefixes(t *testing.T) {
	s := Server{TrustedProxies: []string{"10.0.0.0/8", "bad", " 192.168.1.0/24 ", "2001:db8::/32"}}
	var got []string
	for _, p := range s.TrustedProxyPrefixes() {
		got = append(got, p.String())
	}
	want := []string{"10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"}
	if !slices.Equal(got, want) {
		t.Errorf("TrustedProxyPrefixes = %q, want %q", got, want)
	}
}

func TestLogSlogLevel(t *testing.T) {
	for level, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "": "INFO"} {
		if got := (Log{Level: level}).SlogLevel().String(); got != want {
			t.Errorf("SlogLevel(%q) = %s, want %s", level, got, want)
		}
	}
}
