package oidcprovider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/metrics"
)

// App is what the provider needs from the login core; *idp.App has it.
type App interface {
	BeginLogin(ctx context.Context, req idp.AuthRequest) (string, error)
	FinishLogin(ctx context.Context, txID string) (*idp.AuthResult, error)
	CurrentLogin(ctx context.Context, req idp.AuthRequest) (*idp.AuthResult, error)
	EndSession(ctx context.Context) error
	Logout(ctx context.Context, opts idp.LogoutOptions) (string, error)
	TrackParticipant(ctx context.Context, p idp.Participant) string
	RegisterLogout(protocol string, n idp.LogoutNotifier)
	RecordLogoutResult(ctx context.Context, walkID string, n int, result string) error
	ConfirmLogout(ctx context.Context, next string, askedBy ...idp.Participant) string
	RedirectOut(w http.ResponseWriter, r *http.Request, target string)
	RenderPage(w http.ResponseWriter, r *http.Request, status int, name string, data any)
	Audit(ctx context.Context, typ, subject string, detail map[string]string)
	Handle(pattern string, h http.Handler)
	HandleProtocol(pattern, pathPrefix string, h http.Handler)
	Metrics() *metrics.Metrics
}

// Options wires the provider. App is required; Config, Store and Directory
// default to the app's own (an *idp.App's Config, Store and Directory), so
// a program that built its app needs only Options{App: app}.
type Options struct {
	App       App
	Config    *config.Config
	Store     Store
	Directory Directory
	Logger    *slog.Logger
	// Now is the clock of lifetimes and key rotation; tests inject one.
	Now func() time.Time
}

// Endpoint paths, relative to the issuer.
const (
	pathDiscovery  = "/.well-known/openid-configuration"
	pathJWKS       = "/.well-known/jwks.json"
	pathAuthorize  = "/authorize"
	pathCallback   = "/authorize/callback"
	pathToken      = "/oauth/token"
	pathIntrospect = "/oauth/introspect"
	pathRevoke     = "/oauth/revoke"
	pathUserinfo   = "/userinfo"
	pathEndSession = "/end_session"
)

func callbackURL(id string) string { return pathCallback + "?id=" + url.QueryEscape(id) }

// Provider is the OpenID Connect provider.
type Provider struct {
	cfg     *config.Config
	app     App
	storage *Storage
	op      *op.Provider
	issuer  string
	log     *slog.Logger
	now     func() time.Time
	logout  *logoutNotifier
}

// New builds the provider and makes sure a signing key exists.
func New(ctx context.Context, opts Options) (*Provider, error) {
	if err := fromApp(&opts); err != nil {
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
	issuer := cfg.Server.PublicURL
	insecure, err := insecureIssuerAllowed(issuer)
	if err != nil {
		return nil, err
	}
	secret := []byte(cfg.Security.SecretKey.Value())
	if len(secret) < config.MinSecretKeyBytes {
		return nil, errors.New("oidcprovider: security.secret_key is missing or too short")
	}

	clients := make(map[string]*client, len(cfg.OIDC.Clients))
	for _, c := range cfg.OIDC.Clients {
		cl, err := newClient(c, cfg.OIDC.IDTokenLifetime)
		if err != nil {
			return nil, err
		}
		cl.signingAlg = jose.SignatureAlgorithm(c.SigningAlg(cfg.OIDC.Keys.Algorithm))
		clients[c.ID] = cl
	}
	keys, err := newKeyManager(opts.Store, secret, cfg.OIDC, now, logger)
	if err != nil {
		return nil, err
	}
	storage := &Storage{
		store:           notingStore{opts.Store},
		dir:             notingDirectory{opts.Directory},
		clients:         clients,
		claims:          newClaimMapper(cfg.OIDC),
		keys:            keys,
		cfg:             cfg.OIDC,
		requestLifetime: cfg.Security.LoginTxLifetime,
		now:             now,
		log:             logger,
		app:             opts.App,
	}
	tokens, err := newTokenCrypto(secret)
	if err != nil {
		return nil, err
	}
	opConfig := &op.Config{
		DefaultLogoutRedirectURI: strings.TrimSuffix(issuer, "/") + "/logout",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.Japanese, language.English},
		SupportedScopes:          cfg.OIDC.Scopes(),
	}
	// Relying parties' scripts may call the token, userinfo and key
	// endpoints, but never with the browser's cookies.
	corsOpts := &cors.Options{
		AllowOriginFunc:  func(string) bool { return true },
		AllowedMethods:   []string{http.MethodGet, http.MethodPost},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "Accept"},
		AllowCredentials: false,
	}
	options := []op.Option{
		op.WithCrypto(tokens),
		op.WithCORSOptions(corsOpts),
		op.WithCustomAuthEndpoint(op.NewEndpoint(pathAuthorize)),
		op.WithCustomTokenEndpoint(op.NewEndpoint(pathToken)),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint(pathIntrospect)),
		op.WithCustomRevocationEndpoint(op.NewEndpoint(pathRevoke)),
		op.WithCustomUserinfoEndpoint(op.NewEndpoint(pathUserinfo)),
		op.WithCustomEndSessionEndpoint(op.NewEndpoint(pathEndSession)),
		op.WithCustomKeysEndpoint(op.NewEndpoint(pathJWKS)),
		// op's own checks of JWT access tokens (userinfo) and of
		// id_token_hint (logout) accept RS256, ES256 and PS256 unless told;
		// they must accept every algorithm a client's tokens may carry.
		op.WithAccessTokenVerifierOpts(op.WithSupportedAccessTokenSigningAlgorithms(config.OIDCSigningAlgs...)),
		op.WithIDTokenHintVerifierOpts(op.WithSupportedIDTokenHintSigningAlgorithms(config.OIDCSigningAlgs...)),
	}
	if insecure {
		options = append(options, op.WithAllowInsecure())
	}
	storage.defaultLogout = opConfig.DefaultLogoutRedirectURI
	provider, err := op.NewProvider(opConfig, storage, op.StaticIssuer(issuer), options...)
	if err != nil {
		return nil, fmt.Errorf("oidcprovider: %w", err)
	}
	p := &Provider{cfg: cfg, app: opts.App, storage: storage, op: provider, issuer: issuer, log: logger, now: now}
	p.logout = newLogoutNotifier(p)

	// The first start creates the signing key; a store that cannot do so
	// is an error now rather than at the first login.
	if _, err := keys.current(ctx); err != nil {
		return nil, fmt.Errorf("oidcprovider: signing keys: %w", err)
	}
	return p, nil
}

// fromApp fills the options the program left out from the app's own.
func fromApp(opts *Options) error {
	if opts.App == nil {
		return errors.New("oidcprovider: Options.App is required")
	}
	if a, ok := opts.App.(interface{ Config() *config.Config }); ok && opts.Config == nil {
		opts.Config = a.Config()
	}
	if a, ok := opts.App.(interface{ Store() idp.Store }); ok && opts.Store == nil {
		if s, ok := a.Store().(Store); ok {
			opts.Store = s
		} else {
			return fmt.Errorf("oidcprovider: the app's store (%T) lacks the OIDC tables (see oidcprovider.Store); pass Options.Store", a.Store())
		}
	}
	if a, ok := opts.App.(interface{ Directory() idp.Directory }); ok && opts.Directory == nil {
		opts.Directory = a.Directory()
	}
	if opts.Config == nil || opts.Store == nil || opts.Directory == nil {
		return errors.New("oidcprovider: Options.Config, Store and Directory are required when App is not an *idp.App")
	}
	return nil
}

// insecureIssuerAllowed permits an http issuer only on the loopback
// interface (idp dev, tests); everywhere else the issuer must be https.
func insecureIssuerAllowed(issuer string) (bool, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return false, fmt.Errorf("oidcprovider: issuer (server.public_url) %q is not an absolute URL", issuer)
	}
	switch u.Scheme {
	case "https":
		return false, nil
	case "http":
		host := u.Hostname()
		addr, err := netip.ParseAddr(host)
		if host == "localhost" || (err == nil && addr.IsLoopback()) {
			return true, nil
		}
	}
	return false, fmt.Errorf("oidcprovider: the issuer (server.public_url) must be https, or http only on the loopback interface; got %q", issuer)
}

// Issuer is the provider's issuer identifier.
func (p *Provider) Issuer() string { return p.issuer }

// Mount registers the provider's endpoints on the app. Endpoints that
// relying parties call from their servers or pages with cross-site POSTs
// (token, introspection, revocation, userinfo, authorize, end_session) skip
// the form-token check: they carry their own protection.
func (p *Provider) Mount(app App) {
	app.Handle("GET "+pathDiscovery, http.HandlerFunc(p.handleDiscovery))
	app.Handle("GET "+pathJWKS, p.op)
	app.HandleProtocol(pathAuthorize, pathAuthorize, http.HandlerFunc(p.handleAuthorize))
	app.Handle("GET "+pathCallback, http.HandlerFunc(p.handleCallback))
	app.Handle("GET "+pathConsented, http.HandlerFunc(p.handleConsented))
	app.HandleProtocol("POST "+pathToken, "/oauth/", p.limitClientAuth("token", http.HandlerFunc(p.handleToken)))
	app.HandleProtocol("POST "+pathIntrospect, "/oauth/", p.limitClientAuth("introspection", noStore(p.watchOutages(p.op))))
	app.HandleProtocol("POST "+pathRevoke, "/oauth/", p.limitClientAuth("revocation", p.watchOutages(p.op)))
	app.HandleProtocol(pathUserinfo, pathUserinfo, http.HandlerFunc(p.handleUserinfo))
	app.HandleProtocol(pathEndSession, pathEndSession, http.HandlerFunc(p.handleEndSession))
	app.RegisterLogout(idp.ProtocolOIDC, p.logout)
}

// Run does the provider's housekeeping until ctx ends: it removes expired
// grants, tokens and retired keys, and rotates the signing key when due
// even if no token is signed.
func (p *Provider) Run(ctx context.Context) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.housekeeping(ctx)
		}
	}
}

func (p *Provider) housekeeping(ctx context.Context) {
	if _, err := p.storage.keys.current(ctx); err != nil {
		p.log.WarnContext(ctx, "oidc signing key check failed", "error", err)
	}
	n, err := p.storage.store.DeleteExpiredOIDC(ctx, p.now())
	if err != nil {
		p.log.WarnContext(ctx, "removing expired oidc rows failed", "error", err)
		return
	}
	if n > 0 {
		p.log.DebugContext(ctx, "removed expired oidc rows", "count", n)
	}
}

// noStore marks answers that carry tokens or token state as uncacheable.
func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		h.ServeHTTP(w, r)
	})
}
