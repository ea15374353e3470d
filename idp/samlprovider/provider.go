package samlprovider

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
)

// Paths of the endpoints, relative to the public URL.
const (
	PathMetadata = "/saml/metadata"
	PathSSO      = "/saml/sso"
	PathResume   = "/saml/sso/resume"
	PathSLO      = "/saml/slo"
)

// The IdP's own implementations of crewjam's extension points.
var (
	_ saml.SessionProvider         = (*sessionProvider)(nil)
	_ saml.ServiceProviderProvider = (*Registry)(nil)
	_ saml.AssertionMaker          = assertionMaker{}
	_ xmlenc.BlockCipher           = gcm{}
)

// Store is the persistence the provider needs: expiring records for
// pending requests, SP metadata copies, the generated key and the
// request-ID replay cache. AddRecord creates a record only if none is live,
// with exactly one winner among concurrent callers.
type Store interface {
	PutRecord(ctx context.Context, kind, id string, value []byte, expires time.Time) error
	AddRecord(ctx context.Context, kind, id string, value []byte, expires, now time.Time) error
	GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error)
	TakeRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error)
}

// Options wires the provider. Config and Store default to the app's own
// (its Config and its Store, which must have AddRecord and TakeRecord as
// *store.DB has), so Options{} is enough for an app on the public store.
type Options struct {
	// Config is the whole configuration: server.public_url,
	// security.secret_key and the saml section are read.
	Config *config.Config
	Store  Store
	// Keys overrides the signing keys of the config (saml.signing).
	Keys *KeySet
	// HTTPClient fetches SP metadata from URLs; nil means a client with
	// timeouts.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock; it should be the app's.
	Now func() time.Time
}

// Provider is the SAML identity provider mounted on an idp.App.
type Provider struct {
	app      *idp.App
	cfg      config.SAML
	store    Store
	keys     *KeySet
	registry *Registry
	log      *slog.Logger
	now      func() time.Time

	entityID    string
	metadataURL string
	ssoURL      string
	sloURL      string
	// persistentKey keys the persistent NameIDs.
	persistentKey []byte
	attributes    map[string]config.SAMLAttribute
	// encryptionCert is published for encryption; nil when not configured.
	encryptionCert *x509.Certificate
	// loginTxLifetime is how long a login may take (security.login_tx_lifetime).
	loginTxLifetime time.Duration
	// sessionLifetime bounds how long an issued SessionIndex is remembered
	// for logout (session.absolute_timeout).
	sessionLifetime time.Duration
}

// New builds the provider, loads the SP metadata and mounts the endpoints
// on app. Run keeps the SP metadata fresh.
func New(ctx context.Context, app *idp.App, opts Options) (*Provider, error) {
	if app == nil {
		return nil, errors.New("saml: an app is required")
	}
	if opts.Config == nil {
		opts.Config = app.Config()
	}
	if opts.Store == nil {
		s, ok := app.Store().(Store)
		if !ok {
			return nil, fmt.Errorf("saml: the app's store (%T) cannot keep SAML records (see samlprovider.Store); pass Options.Store", app.Store())
		}
		opts.Store = s
	}
	cfg := opts.Config
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "saml")
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	base := strings.TrimSuffix(cfg.Server.PublicURL, "/")
	if u, err := url.Parse(base); err != nil || u.Host == "" {
		return nil, fmt.Errorf("saml: server.public_url %q is not an absolute URL", cfg.Server.PublicURL)
	}
	p := &Provider{
		app:         app,
		cfg:         cfg.SAML,
		store:       opts.Store,
		log:         logger,
		now:         now,
		entityID:    cfg.SAML.EntityIDFor(base),
		metadataURL: base + PathMetadata,
		ssoURL:      base + PathSSO,
		sloURL:      base + PathSLO,
		attributes:  map[string]config.SAMLAttribute{},

		loginTxLifetime: cfg.Security.LoginTxLifetime,
		sessionLifetime: cfg.Session.AbsoluteTimeout,
	}
	for _, a := range cfg.SAML.Attributes {
		p.attributes[a.Name] = a
	}
	p.persistentKey = persistentIDKey(cfg)

	keys := opts.Keys
	var err error
	switch {
	case keys != nil:
	case cfg.SAML.Signing.Generate:
		if keys, err = GeneratedKeySet(ctx, opts.Store, p.entityID, now()); err != nil {
			return nil, err
		}
		for _, f := range cfg.SAML.Signing.ExtraCertFiles {
			extra, err := readCertFile(f)
			if err != nil {
				return nil, fmt.Errorf("saml: extra certificate: %w", err)
			}
			keys.publish(extra)
		}
	default:
		if keys, err = LoadKeySet(cfg.SAML.Signing); err != nil {
			return nil, err
		}
	}
	p.keys = keys
	if f := cfg.SAML.Metadata.EncryptionCertFile; f != "" {
		if p.encryptionCert, err = readCertFile(f); err != nil {
			return nil, fmt.Errorf("saml: metadata encryption certificate: %w", err)
		}
	}

	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	p.registry = newRegistry(registryOptions{
		sps:       cfg.SAML.ServiceProviders,
		refresh:   cfg.SAML.MetadataRefresh,
		client:    client,
		store:     opts.Store,
		log:       logger,
		now:       now,
		maxSize:   cmp.Or(cfg.SAML.MaxMetadataBytes, maxMetadataBytes),
		certFiles: readCertFile,
		feds:      cfg.SAML.Federations,
	})
	p.registry.loadAll(ctx)
	if len(cfg.SAML.Federations) > 0 {
		if err := app.Metrics().Register(federationCollector{p.registry}); err != nil {
			return nil, fmt.Errorf("saml: metrics: %w", err)
		}
	}

	p.mount()
	return p, nil
}

// persistentIDKey returns the key of persistent NameIDs: the configured
// secret, or one derived from security.secret_key for this purpose only.
func persistentIDKey(cfg *config.Config) []byte {
	if cfg.SAML.PersistentIDSecret.IsSet() {
		return []byte(cfg.SAML.PersistentIDSecret.Value())
	}
	mac := hmac.New(sha256.New, []byte(cfg.Security.SecretKey.Value()))
	mac.Write([]byte("campusidp saml persistent-id key"))
	return mac.Sum(nil)
}

func (p *Provider) mount() {
	p.app.Handle("GET "+PathMetadata, http.HandlerFunc(p.handleMetadata))
	p.app.Handle("GET "+PathSSO, http.HandlerFunc(p.handleSSO))
	// The HTTP-POST binding is a cross-site form post without our form
	// token; the request's own checks (registered SP and ACS, signature,
	// lifetime, replay cache) protect it.
	p.app.HandleProtocol("POST "+PathSSO, PathSSO, http.HandlerFunc(p.handleSSO))
	p.app.Handle("GET "+PathContinue, http.HandlerFunc(p.handleContinue))
	p.app.Handle("GET "+PathResume, http.HandlerFunc(p.handleResume))
	p.app.Handle("GET "+PathConsented, http.HandlerFunc(p.handleConsented))
	p.app.Handle("GET "+PathRefused, http.HandlerFunc(p.handleRefused))
	p.app.Handle("GET "+PathSLO, http.HandlerFunc(p.handleSLO))
	p.app.HandleProtocol("POST "+PathSLO, PathSLO, http.HandlerFunc(p.handleSLO))
	p.app.Handle("GET "+PathSLOContinue, http.HandlerFunc(p.handleSLOContinue))
	p.app.Handle("GET "+PathSLOSend, http.HandlerFunc(p.handleSLOSend))
	p.app.Handle("GET "+PathSLOFinish, http.HandlerFunc(p.handleSLOFinish))
	p.app.RegisterLogout(idp.ProtocolSAML, logoutNotifier{p})
}

// Run re-reads SP metadata on schedule until ctx ends.
func (p *Provider) Run(ctx context.Context) { p.registry.run(ctx) }

// EntityID is the IdP's entity ID.
func (p *Provider) EntityID() string { return p.entityID }

// Registry is the SP registry.
func (p *Provider) Registry() *Registry { return p.registry }

// identityProvider is the crewjam view of this IdP, handed to the
// AssertionMaker through IdpAuthnRequest.IDP.
func (p *Provider) identityProvider() *saml.IdentityProvider {
	entity, _ := url.Parse(p.entityID)
	sso, _ := url.Parse(p.ssoURL)
	slo, _ := url.Parse(p.sloURL)
	return &saml.IdentityProvider{
		Signer:                  p.keys.Signer,
		Certificate:             p.keys.Certificate,
		MetadataURL:             *entity,
		SSOURL:                  *sso,
		LogoutURL:               *slo,
		ServiceProviderProvider: p.registry,
		SignatureMethod:         signatureMethod,
	}
}
