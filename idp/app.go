package idp

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

// Directory is what the login core needs from the account directory.
type Directory interface {
	Authenticate(ctx context.Context, id, password string) (*ldapstore.User, error)
	Lookup(ctx context.Context, id string) (*ldapstore.User, error)
}

// Store is the persistence the login core needs.
type Store interface {
	PutRecord(ctx context.Context, kind, id string, value []byte, expires time.Time) error
	GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error)
	DeleteRecord(ctx context.Context, kind, id string) error
	UpdateRecord(ctx context.Context, kind, id string, now time.Time, fn func(old []byte) ([]byte, error)) error

	HitCounter(ctx context.Context, key string, now time.Time, window time.Duration) (store.Counter, error)
	UndoCounter(ctx context.Context, key string, now time.Time) error
	GetCounter(ctx context.Context, key string, now time.Time) (store.Counter, error)
	ResetCounter(ctx context.Context, key string) error
	ResetCountersWithPrefix(ctx context.Context, prefix string) (int, error)

	AppendAudit(ctx context.Context, e store.AuditEvent) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)

	BindSessionUser(ctx context.Context, token, userID string) error
	DeleteUserSessions(ctx context.Context, userID, exceptToken string) (int, error)
}

// Options wires the app. Config, Directory, Store, Sessions and Mailer are
// required; the rest is optional.
type Options struct {
	// Config is the configuration tree; start from config.Default() and set
	// Server.PublicURL and Security.SecretKey. New validates it with
	// config.Embedded: the ldap, mail and store sections are not read here
	// (the program passes Directory, Mailer and Store).
	Config *config.Config
	// Directory checks passwords and reads accounts (ldapstore.Directory,
	// or the program's own).
	Directory Directory
	// Store persists login transactions, factors, counters and the audit
	// log: store.OpenSQLite or store.OpenPostgres, or the program's own
	// implementation checked with storetest.Run. There is no default: a
	// store that forgot everything on restart would silently reset users'
	// second factors.
	Store Store
	// Sessions persists browser sessions; normally the store's:
	// (*store.DB).SessionStore().
	Sessions scs.Store
	Logger   *slog.Logger
	// Templates overrides the embedded templates (tests, white-labelling).
	// To change wording only, use Messages instead.
	Templates fs.FS
	// Messages overrides entries of the message catalog
	// (templates/messages.yaml) by key, both languages each; a key the
	// catalog does not have is an error, so a typo cannot go unnoticed.
	Messages map[string]Message
	// Now is the clock; tests inject one to check lifetimes.
	Now func() time.Time
	// Mailer delivers codes and notices; required (mail.NewSMTP adapted
	// with MailerFunc, or the program's own).
	Mailer Mailer
	// AuditSink, when set, receives every audit event once the store has
	// kept it, e.g. to ship it to a SIEM.
	AuditSink AuditSink
	// DevOutbox, when set, is shown at /dev/outbox (idp dev only).
	DevOutbox Outbox
	// Metrics, when set, counts logins, factors and requests (see metrics.go).
	Metrics *metrics.Metrics
	// Registerer, when set and Metrics is nil, receives the IdP's metrics
	// (metrics.NewIn); nil Metrics and Registerer mean no metrics at all.
	Registerer prometheus.Registerer
}

// Outbox lists mails kept by the development mail transport.
type Outbox interface {
	Messages() []OutboxMessage
}

// OutboxMessage is one mail shown on the development outbox page.
type OutboxMessage struct {
	Time    time.Time
	To      string
	Subject string
	Text    string
}

// App is the IdP's HTTP application.
type App struct {
	cfg       *config.Config
	dir       Directory
	store     Store
	sessions  *scs.SessionManager
	log       *slog.Logger
	pages     *renderer
	now       func() time.Time
	publicURL *url.URL
	secure    bool
	proxies   []netip.Prefix
	idPattern *regexp.Regexp
	outbox    Outbox
	metrics   *metrics.Metrics
	mailer    Mailer
	mails     *mailer
	sink      AuditSink
	brand     *brandAssets
	codes     *mfa.Codes
	box       *mfa.SecretBox
	keys      KeyFactor   // security keys, when plugged in (SetKeyFactor)
	consent   ConsentGate // attribute-release consent, when plugged in (SetConsent)
	mux       *http.ServeMux
	handler   http.Handler
	// csrfExempt are path prefixes of protocol endpoints (HandleProtocol).
	csrfExempt []string
	// notifiers tell each protocol's services of a logout (RegisterLogout).
	logoutMu  sync.RWMutex
	notifiers map[string]LogoutNotifier
}

// New builds the app; it fails when a template or message is missing.
func New(opts Options) (*App, error) {
	if err := checkOptions(&opts); err != nil {
		return nil, err
	}
	cfg := opts.Config
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	tfs := opts.Templates
	if tfs == nil {
		tfs = defaultTemplates()
	}
	pages, err := newRenderer(tfs)
	if err != nil {
		return nil, err
	}
	if err := pages.catalog.override(cfg.Branding, opts.Messages); err != nil {
		return nil, err
	}
	pub, err := url.Parse(cfg.Server.PublicURL)
	if err != nil || pub.Host == "" {
		return nil, fmt.Errorf("idp: server.public_url %q is not an absolute URL", cfg.Server.PublicURL)
	}
	var proxies []netip.Prefix
	for _, p := range cfg.Server.TrustedProxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("idp: server.trusted_proxies: %w", err)
		}
		proxies = append(proxies, prefix)
	}
	idPattern, err := regexp.Compile(cfg.LDAP.IDPattern)
	if err != nil || cfg.LDAP.IDPattern == "" {
		return nil, fmt.Errorf("idp: ldap.id_pattern %q is not a usable regular expression", cfg.LDAP.IDPattern)
	}
	mails, err := newMailer(tfs, pages.catalog, cfg.Branding)
	if err != nil {
		return nil, fmt.Errorf("idp: mail templates: %w", err)
	}
	email := cfg.MFA.Email
	var app *App // the ceiling alarm runs on the app built below
	codes, err := mfa.NewCodes(mfa.CodeConfig{
		Digits:              email.CodeDigits,
		Lifetime:            email.CodeLifetime,
		ResetLifetime:       email.ResetCodeLifetime,
		MaxTries:            email.MaxTriesPerCode,
		FailureLimit:        email.FailureBudget.Limit,
		FailureWindow:       email.FailureBudget.Window,
		AccountFailureLimit: email.AccountFailureLimit,
		ResendCooldown:      email.ResendCooldown,
		SendsPerHour:        email.SendsPerHour,
		MaxOutstanding:      email.MaxOutstandingCodes,
	}, []byte(cfg.Security.SecretKey.Value()), mfaStore{opts.Store}, mfaStore{opts.Store}, mfa.WithClock(now),
		mfa.WithCeilingAlarm(func(ctx context.Context, userID string, until time.Time) { app.otpCeilingReached(ctx, userID, until) }))
	if err != nil {
		return nil, err
	}
	box, err := mfa.NewSecretBox([]byte(cfg.Security.SecretKey.Value()))
	if err != nil {
		return nil, err
	}
	a := &App{
		cfg:       cfg,
		dir:       opts.Directory,
		store:     opts.Store,
		log:       logger,
		pages:     pages,
		now:       now,
		publicURL: pub,
		secure:    pub.Scheme == "https",
		proxies:   proxies,
		idPattern: idPattern,
		outbox:    opts.DevOutbox,
		metrics:   opts.Metrics,
		mailer:    opts.Mailer,
		mails:     mails,
		sink:      opts.AuditSink,
		codes:     codes,
		box:       box,
	}
	app = a
	if a.brand, err = loadBrandAssets(cfg.Branding); err != nil {
		return nil, err
	}
	a.sessions = a.newSessionManager(opts.Sessions)
	a.routes()
	return a, nil
}

// secretKey keys the HMACs of codes and cookies.
func (a *App) secretKey() []byte { return []byte(a.cfg.Security.SecretKey.Value()) }

// Handler is the app's root handler, with every middleware applied.
func (a *App) Handler() http.Handler { return a.handler }

// Sessions exposes the session manager to protocol front-ends mounted on the
// same handler chain.
func (a *App) Sessions() *scs.SessionManager { return a.sessions }

func (a *App) routes() {
	mux := http.NewServeMux()
	static, _ := fs.Sub(defaultTemplates(), "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(static)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	a.routeBrand(mux)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/user/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /login", a.handleLoginPage)
	mux.HandleFunc("POST /login", a.handleLoginSubmit)
	mux.HandleFunc("POST /logout", a.handleLogout)
	mux.HandleFunc("GET /logout", a.handleLoggedOut)
	mux.HandleFunc("GET /logout/confirm", a.handleLogoutConfirm)
	mux.HandleFunc("GET /logout/walk", a.handleLogoutWalk)
	mux.HandleFunc("GET /logout/status", a.handleLogoutStatus)
	mux.HandleFunc("GET /logout/done", a.handleLogoutDone)
	mux.HandleFunc("GET /user/{$}", a.handleUserPage)
	mux.HandleFunc("GET /mfa", a.handleMFAPage)
	mux.HandleFunc("POST /mfa/send", a.handleMFASend)
	mux.HandleFunc("POST /mfa/verify", a.handleMFAVerify)
	mux.HandleFunc("POST /mfa/recovery", a.handleMFARecovery)
	mux.HandleFunc("GET /user/otp", a.handleSettingsPage)
	mux.HandleFunc("POST /user/otp/email/send", a.handleSettingsSend)
	mux.HandleFunc("POST /user/otp/email/confirm", a.handleSettingsConfirm)
	mux.HandleFunc("POST /user/otp/app/confirm", a.handleAppConfirm)
	mux.HandleFunc("POST /user/otp/recovery", a.handleRecoveryRegenerate)
	mux.HandleFunc("POST /user/trusted/revoke", a.handleTrustedRevoke)
	mux.HandleFunc("GET /reset", a.handleResetLogin)
	mux.HandleFunc("POST /reset/login", a.handleResetLoginSubmit)
	mux.HandleFunc("GET /reset/init", a.handleResetInitPage)
	mux.HandleFunc("POST /reset/init", a.handleResetInit)
	mux.HandleFunc("GET /reset/code", a.handleResetCodePage)
	mux.HandleFunc("POST /reset/resend", a.handleResetResend)
	mux.HandleFunc("POST /reset/confirm", a.handleResetConfirm)
	if a.outbox != nil {
		mux.HandleFunc("GET /dev/outbox", a.handleDevOutbox)
	}
	a.routeMetrics(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.renderError(w, r, http.StatusNotFound, "error.title", "error.not_found")
	})
	a.mux = mux

	var h http.Handler = mux
	h = a.csrfProtect(h)
	h = a.followAccountStatus(h)
	h = a.sessionTimeouts(h)
	h = a.sessions.LoadAndSave(h)
	h = a.unitOfWork(h)
	h = a.securityHeaders(h)
	h = a.recoverPanics(h)
	h = a.requestContext(h)
	h = a.observeHTTP(h)
	a.handler = h
}

// Handle mounts a handler on the app's router, behind the same sessions,
// headers and CSRF checks as the IdP's own pages.
func (a *App) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// HandleProtocol mounts a protocol endpoint that legitimately receives
// cross-site POSTs without our form token (the OAuth token endpoint, the SAML
// HTTP-POST binding). pathPrefix is the path it serves under; such endpoints
// carry their own protections (client authentication, signatures, PKCE).
func (a *App) HandleProtocol(pattern, pathPrefix string, h http.Handler) {
	a.csrfExempt = append(a.csrfExempt, pathPrefix)
	a.mux.Handle(pattern, h)
}

func staticHandler(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}
