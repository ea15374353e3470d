package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Values accepted by the enumerated settings.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"

	TransportSMTP = "smtp"
	TransportLog  = "log"

	SMTPStartTLS = "starttls"
	SMTPTLS      = "tls" // implicit TLS from the first byte (usually port 465)
	SMTPNoTLS    = "none"

	EnrollmentRequired = "required"
	EnrollmentOptional = "optional"

	GroupsMemberOf = "memberof"
	GroupsSearch   = "search"
	GroupsNone     = "none"

	LogJSON = "json"
	LogText = "text"
)

// DefaultIDPattern admits the characters of campus account IDs.
const DefaultIDPattern = `^[A-Za-z0-9._@-]{1,64}$`

// Placeholders substituted into LDAP filters by the directory code.
const (
	FilterIDPlaceholder = "{id}"
	FilterDNPlaceholder = "{dn}"
)

// Config is the whole configuration of one idp process.
type Config struct {
	Server   Server   `yaml:"server"`
	Branding Branding `yaml:"branding"`
	LDAP     LDAP     `yaml:"ldap"`
	Store    Store    `yaml:"store"`
	Session  Session  `yaml:"session"`
	Security Security `yaml:"security"`
	Mail     Mail     `yaml:"mail"`
	MFA      MFA      `yaml:"mfa"`
	Log      Log      `yaml:"log"`
	Admin    Admin    `yaml:"admin"`
	SAML     SAML     `yaml:"saml"`
	OIDC     OIDC     `yaml:"oidc"`
	Metrics  Metrics  `yaml:"metrics"`
	Audit    Audit    `yaml:"audit"`
	Consent  Consent  `yaml:"consent"`
	Logout   Logout   `yaml:"logout"`
}

// Server is the HTTP listener and the public identity of the IdP.
type Server struct {
	Listen string `yaml:"listen"`
	// PublicURL is the externally visible base URL and the OIDC issuer.
	PublicURL string `yaml:"public_url"`
	// TrustedProxies are CIDRs whose X-Forwarded-For header is believed.
	TrustedProxies  []string      `yaml:"trusted_proxies"`
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ShutdownDelay is how long, after SIGTERM, /readyz answers 503 while
	// the listener keeps serving, so a load balancer stops sending new
	// requests before the drain begins.
	ShutdownDelay time.Duration `yaml:"shutdown_delay"`
}

// TrustedProxyPrefixes returns the parsed trusted_proxies. Entries that do
// not parse are skipped; Validate reports them.
func (s Server) TrustedProxyPrefixes() []netip.Prefix {
	prefixes := make([]netip.Prefix, 0, len(s.TrustedProxies))
	for _, cidr := range s.TrustedProxies {
		if p, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err == nil {
			prefixes = append(prefixes, p.Masked())
		}
	}
	return prefixes
}

// Localized is a text shown side by side in Japanese and English.
type Localized struct {
	JA string `yaml:"ja"`
	EN string `yaml:"en"`
}

// Branding is what the pages and mails call the organisation and where they
// send users for help.
type Branding struct {
	OrgName           Localized `yaml:"org_name"`
	SystemName        Localized `yaml:"system_name"`
	SupportName       Localized `yaml:"support_name"`
	HelpdeskPhone     string    `yaml:"helpdesk_phone"`
	HelpdeskHours     Localized `yaml:"helpdesk_hours"`
	ForgotPasswordURL string    `yaml:"forgot_password_url"`
	HelpURL           string    `yaml:"help_url"`
	InquiryURL        string    `yaml:"inquiry_url"`
	// LogoFile is a PNG, JPEG or SVG image shown in the page header,
	// served at /brand/logo; empty shows the names alone.
	LogoFile string      `yaml:"logo_file"`
	Colors   BrandColors `yaml:"colors"`
}

// BrandColors are the pages' colours as #rrggbb, served in /brand/style.css
// over the built-in sheet, so a campus need not copy the templates.
type BrandColors struct {
	// Header is the background of the page header (white text on it).
	Header string `yaml:"header"`
	// Accent colours links and buttons (white text on filled buttons).
	Accent string `yaml:"accent"`
}

// LDAP is the directory that holds the accounts.
type LDAP struct {
	URLs               []string `yaml:"urls"`
	StartTLS           bool     `yaml:"start_tls"`
	CAFile             string   `yaml:"ca_file"`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify"`
	BindDN             string   `yaml:"bind_dn"`
	BindPassword       Secret   `yaml:"bind_password"`
	UserBaseDN         string   `yaml:"user_base_dn"`
	UserFilter         string   `yaml:"user_filter"`
	DisabledFilter     string   `yaml:"disabled_filter"`
	// IDPattern is the regular expression every login ID must match, after
	// canonicalisation (NFKC, case folding), before it is counted or sent to
	// the directory.
	IDPattern string `yaml:"id_pattern"`
	// TimingDecoyDN is the entry unknown IDs bind against (see
	// config.example.yaml); empty binds them to a DN that does not exist.
	TimingDecoyDN    string         `yaml:"timing_decoy_dn"`
	Attributes       LDAPAttributes `yaml:"attributes"`
	Groups           LDAPGroups     `yaml:"groups"`
	PoolSize         int            `yaml:"pool_size"`
	DialTimeout      time.Duration  `yaml:"dial_timeout"`
	OperationTimeout time.Duration  `yaml:"operation_timeout"`
	IdleTimeout      time.Duration  `yaml:"idle_timeout"`
}

// LDAPAttributes maps user properties to directory attribute names.
type LDAPAttributes struct {
	ID            string   `yaml:"id"`
	DisplayName   string   `yaml:"display_name"`
	DisplayNameJA string   `yaml:"display_name_ja"`
	Mail          string   `yaml:"mail"`
	Extra         []string `yaml:"extra"`
}

// LDAPGroups says how group membership is found.
type LDAPGroups struct {
	Mode          string `yaml:"mode"`
	Attribute     string `yaml:"attribute"`
	BaseDN        string `yaml:"base_dn"`
	Filter        string `yaml:"filter"`
	NameAttribute string `yaml:"name_attribute"`
}

// Store is the persistence backend.
type Store struct {
	Driver string `yaml:"driver"`
	// DSN is a file path for sqlite and a connection string for postgres;
	// a Secret because PostgreSQL connection strings carry passwords.
	DSN Secret `yaml:"dsn"`
}

// Session is the browser session cookie.
type Session struct {
	CookieName      string        `yaml:"cookie_name"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	AbsoluteTimeout time.Duration `yaml:"absolute_timeout"`
	// Store is where sessions live: SessionStoreDB or SessionStoreRedis.
	Store string       `yaml:"store"`
	Redis SessionRedis `yaml:"redis"`
}

// Security holds the master key and login throttling.
type Security struct {
	// SecretKey keys the HMACs of stored codes and of cookies.
	SecretKey          Secret        `yaml:"secret_key"`
	LoginTxLifetime    time.Duration `yaml:"login_tx_lifetime"`
	RememberIDLifetime time.Duration `yaml:"remember_id_lifetime"`
	// DeviceCookieLifetime is how long a browser that passed the password
	// check for an ID stays exempt from that ID's account-wide limit.
	DeviceCookieLifetime time.Duration  `yaml:"device_cookie_lifetime"`
	PasswordBudget       PasswordBudget `yaml:"password_budget"`
}

// PasswordBudget limits password attempts. PerClient is the small budget of
// one ID from one client (a browser with that ID's device cookie, else the
// address); PerID is a much higher account-wide ceiling that refuses only
// clients without a device cookie; PerIP refuses only clients without one.
type PasswordBudget struct {
	PerClient Budget `yaml:"per_client"`
	PerID     Budget `yaml:"per_id"`
	PerIP     Budget `yaml:"per_ip"`
}

// Budget allows Limit events per sliding Window.
type Budget struct {
	Limit  int           `yaml:"limit"`
	Window time.Duration `yaml:"window"`
}

// Mail is outgoing mail.
type Mail struct {
	From      string    `yaml:"from"`
	FromName  Localized `yaml:"from_name"`
	Transport string    `yaml:"transport"`
	SMTP      SMTP      `yaml:"smtp"`
}

// SMTP is the submission server used when Mail.Transport is "smtp".
type SMTP struct {
	Host     string        `yaml:"host"`
	Port     int           `yaml:"port"`
	TLS      string        `yaml:"tls"`
	Username string        `yaml:"username"`
	Password Secret        `yaml:"password"`
	Timeout  time.Duration `yaml:"timeout"`
}

// MFA is the second-factor policy.
type MFA struct {
	Enrollment             string        `yaml:"enrollment"`
	Email                  EmailOTP      `yaml:"email"`
	TrustedBrowserLifetime time.Duration `yaml:"trusted_browser_lifetime"`
	WebAuthn               WebAuthn      `yaml:"webauthn"`
}

// WebAuthn is the security-key and passkey factor (phishing-resistant).
type WebAuthn struct {
	// Enabled offers the factor on the settings and login pages.
	Enabled bool `yaml:"enabled"`
	// RPID is the relying-party ID credentials are bound to; empty means the
	// host of server.public_url. A parent domain of that host makes the
	// credentials valid on its other hosts too.
	RPID string `yaml:"rp_id"`
	// UserVerification asks authenticators for a PIN or biometric:
	// "preferred", "required" or "discouraged".
	UserVerification string `yaml:"user_verification"`
	// AllowedAAGUIDs, when set, limits registration to these authenticator
	// models (a campus that issues keys); attestation is then requested.
	AllowedAAGUIDs []string `yaml:"allowed_aaguids"`
	// MaxCredentials caps the keys one user may register.
	MaxCredentials int `yaml:"max_credentials"`
	// Timeout is how long the browser has to complete one ceremony.
	Timeout time.Duration `yaml:"timeout"`
	// Passwordless offers "Sign in with a passkey" on the login page:
	// discoverable credentials with user verification, no password typed.
	Passwordless bool `yaml:"passwordless"`
}

// EmailOTP is the mailed one-time code factor and its reset flow.
type EmailOTP struct {
	CodeDigits      int           `yaml:"code_digits"`
	CodeLifetime    time.Duration `yaml:"code_lifetime"`
	MaxTriesPerCode int           `yaml:"max_tries_per_code"`
	// FailureBudget counts wrong codes (mailed, app and recovery codes,
	// security keys) per login transaction / settings session, or per owner's
	// browser (trusted-browser or device cookie); once spent, that session
	// is locked until the window ends, and resending does not refill it.
	FailureBudget Budget `yaml:"failure_budget"`
	// AccountFailureLimit is the account-wide ceiling on failures in the
	// same window over all sessions without an owner's browser cookie
	// (NIST SP 800-63B: at most 100). Reaching it mails the owner.
	AccountFailureLimit int           `yaml:"account_failure_limit"`
	ResendCooldown      time.Duration `yaml:"resend_cooldown"`
	SendsPerHour        int           `yaml:"sends_per_hour"`
	// MaxOutstandingCodes mailed codes of one user and purpose stay valid
	// at once, so a resend or another login does not void the code on its way.
	MaxOutstandingCodes int           `yaml:"max_outstanding_codes"`
	ResetCodeLifetime   time.Duration `yaml:"reset_code_lifetime"`
	ResetGrantLifetime  time.Duration `yaml:"reset_grant_lifetime"`
	// BlockedDomains are lower-case; their subdomains are blocked too.
	BlockedDomains []string `yaml:"blocked_domains"`
	// PlaceholderAddress is shown on the reset page when no address is registered.
	PlaceholderAddress string `yaml:"placeholder_address"`
}

// BlocksAddress reports whether addr's domain is one of BlockedDomains or a
// subdomain of one. An address without a domain is not blocked here; address
// syntax is the caller's check.
func (e EmailOTP) BlocksAddress(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	domain := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(addr[at+1:])), ".")
	for _, blocked := range e.BlockedDomains {
		blocked = strings.ToLower(blocked)
		if domain == blocked || strings.HasSuffix(domain, "."+blocked) {
			return true
		}
	}
	return false
}

// Log is the process log.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// SlogLevel returns Level as a slog.Level (info for an unknown level, which
// Validate reports).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Default returns the configuration used for every key the file leaves out:
// every limit, lifetime and timeout has its safe value. It is not valid on
// its own: server.public_url and security.secret_key have no sensible
// default, nor, for the parts the idp binary wires from config,
// ldap.urls, ldap.user_base_dn, mail.from and (for SMTP) mail.smtp.host.
//
// A program embedding package idp starts from Default, sets
// Server.PublicURL and Security.SecretKey, and passes its own directory,
// mailer and store; Validate(Embedded...) then checks what is left.
func Default() Config {
	return Config{
		Server: Server{
			Listen:          ":8080",
			ReadTimeout:     10 * time.Second,
			WriteTimeout:    30 * time.Second,
			IdleTimeout:     120 * time.Second,
			ShutdownTimeout: 20 * time.Second,
			ShutdownDelay:   5 * time.Second,
		},
		Branding: Branding{
			OrgName:       Localized{JA: "サンプル大学", EN: "Example University"},
			SystemName:    Localized{JA: "統合認証システム", EN: "Integrated Authentication System"},
			SupportName:   Localized{JA: "情報環境支援センター", EN: "ICT Support Center"},
			HelpdeskPhone: "+81-75-000-0000",
			HelpdeskHours: Localized{JA: "平日 9:00-17:00", EN: "Weekdays 9:00-17:00"},
			Colors:        BrandColors{Header: "#0b3d6e", Accent: "#0b5cab"},
		},
		LDAP: LDAP{
			UserFilter: "(&(objectClass=inetOrgPerson)(uid={id}))",
			IDPattern:  DefaultIDPattern,
			Attributes: LDAPAttributes{
				ID:            "uid",
				DisplayName:   "displayName",
				DisplayNameJA: "displayName;lang-ja",
				Mail:          "mail",
			},
			Groups: LDAPGroups{
				Mode:          GroupsMemberOf,
				Attribute:     "memberOf",
				Filter:        "(member={dn})",
				NameAttribute: "cn",
			},
			PoolSize:         8,
			DialTimeout:      5 * time.Second,
			OperationTimeout: 5 * time.Second,
			IdleTimeout:      5 * time.Minute,
		},
		Store: Store{
			Driver: StoreSQLite,
			DSN:    SecretValue("/var/lib/idp/idp.db"),
		},
		Session: Session{
			CookieName:      "idp_session",
			IdleTimeout:     30 * time.Minute,
			AbsoluteTimeout: 12 * time.Hour,
			Store:           SessionStoreDB,
			Redis:           defaultSessionRedis(),
		},
		Security: Security{
			LoginTxLifetime:      15 * time.Minute,
			RememberIDLifetime:   720 * time.Hour,
			DeviceCookieLifetime: 2160 * time.Hour,
			PasswordBudget: PasswordBudget{
				PerClient: Budget{Limit: 10, Window: 15 * time.Minute},
				PerID:     Budget{Limit: 100, Window: time.Hour},
				PerIP:     Budget{Limit: 1000, Window: 15 * time.Minute},
			},
		},
		Mail: Mail{
			Transport: TransportSMTP,
			SMTP: SMTP{
				Port:    587,
				TLS:     SMTPStartTLS,
				Timeout: 10 * time.Second,
			},
		},
		MFA: MFA{
			Enrollment: EnrollmentRequired,
			Email: EmailOTP{
				CodeDigits:          6,
				CodeLifetime:        10 * time.Minute,
				MaxTriesPerCode:     5,
				FailureBudget:       Budget{Limit: 10, Window: time.Hour},
				AccountFailureLimit: 100,
				ResendCooldown:      60 * time.Second,
				SendsPerHour:        10,
				MaxOutstandingCodes: 3,
				ResetCodeLifetime:   30 * time.Minute,
				ResetGrantLifetime:  15 * time.Minute,
				PlaceholderAddress:  "id00000000@mail2.adm.example.ac.jp",
			},
			TrustedBrowserLifetime: 720 * time.Hour,
			WebAuthn: WebAuthn{
				Enabled:          true,
				UserVerification: "preferred",
				MaxCredentials:   10,
				Timeout:          5 * time.Minute,
			},
		},
		Log:     Log{Level: "info", Format: LogJSON},
		Admin:   defaultAdmin(),
		SAML:    defaultSAML(),
		OIDC:    defaultOIDC(),
		Metrics: defaultMetrics(),
		Audit:   defaultAudit(),
		Consent: defaultConsent(),
		Logout:  defaultLogout(),
	}
}

// Load reads the file at path and parses it with Parse.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse lays the YAML document in data over Default() and validates the
// result. Structural problems (unknown keys, wrong types, malformed secrets)
// are all reported together, each as a *FieldError whose message names the
// line; only when there are none is the result validated, and then the
// Validate errors are returned. With a structural error the returned Config
// is Default(); with Validate errors it is the decoded config.
func Parse(data []byte) (Config, error) {
	cfg := Default()

	root, err := singleDocument(data)
	if err != nil {
		return cfg, err
	}
	if root == nil {
		// An empty file means "all defaults"; Validate names what is missing.
		return cfg, cfg.Validate()
	}
	if errs := checkTree(root); len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}

	// checkTree has already vetted every key and scalar; decoding with
	// KnownFields as well keeps the two from ever drifting apart silently.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("decode config: %w", err)
	}
	cfg.normalize()
	return cfg, cfg.Validate()
}

// singleDocument returns the root node of the only YAML document in data,
// or nil when data holds no document at all.
func singleDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("parse config: %w", err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("parse config: %w", err)
	default:
		return nil, fmt.Errorf("parse config: line %d: a second YAML document; the config must be a single document", extra.Line)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("parse config: line %d: the top level must be a mapping of sections (server:, ldap:, ...)", root.Line)
	}
	return root, nil
}

// normalize applies the forgiving spellings the file may use.
func (c *Config) normalize() {
	for i, d := range c.MFA.Email.BlockedDomains {
		// The manual lists domains as "@kyoto-u.ac.jp"; accept that spelling.
		d = strings.TrimPrefix(strings.TrimSpace(d), "@")
		c.MFA.Email.BlockedDomains[i] = strings.ToLower(d)
	}
}
