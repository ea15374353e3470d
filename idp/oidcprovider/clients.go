package oidcprovider

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/campusidp/campusidp/config"
)

var errBadSecret = errors.New("oidcprovider: client authentication failed")

// client is a registered relying party (op.Client).
type client struct {
	cfg             config.OIDCClient
	scopes          []string
	grantTypes      []oidc.GrantType
	sector          string
	idTokenLifetime time.Duration
	secret          secretChecker
	// signingAlg signs the client's ID tokens and JWT access tokens
	// (id_token_signed_response_alg, or keys.algorithm).
	signingAlg jose.SignatureAlgorithm
}

var _ op.Client = (*client)(nil)

func newClient(c config.OIDCClient, idTokenLifetime time.Duration) (*client, error) {
	cl := &client{
		cfg:             c,
		scopes:          c.AllowedScopes(),
		sector:          sectorOf(c),
		idTokenLifetime: idTokenLifetime,
	}
	if len(c.RedirectURIs) > 0 {
		cl.grantTypes = append(cl.grantTypes, oidc.GrantTypeCode)
		if slices.Contains(cl.scopes, oidc.ScopeOfflineAccess) {
			cl.grantTypes = append(cl.grantTypes, oidc.GrantTypeRefreshToken)
		}
	}
	if c.ClientCredentials {
		cl.grantTypes = append(cl.grantTypes, oidc.GrantTypeClientCredentials)
	}
	if !c.IsPublic() {
		check, err := newSecretChecker(c)
		if err != nil {
			return nil, fmt.Errorf("oidcprovider: client %s: %w", c.ID, err)
		}
		cl.secret = check
	}
	return cl, nil
}

func (c *client) GetID() string                    { return c.cfg.ID }
func (c *client) RedirectURIs() []string           { return c.cfg.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.cfg.PostLogoutRedirectURIs }

func (c *client) ApplicationType() op.ApplicationType {
	if c.cfg.AppType() == config.OIDCAppNative {
		return op.ApplicationTypeNative
	}
	// A public web client (a single-page app) is a "user agent" client to
	// op: it holds no secret.
	if c.cfg.IsPublic() {
		return op.ApplicationTypeUserAgent
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	switch c.cfg.AuthMethod() {
	case config.OIDCAuthPost:
		return oidc.AuthMethodPost
	case config.OIDCAuthNone:
		return oidc.AuthMethodNone
	default:
		return oidc.AuthMethodBasic
	}
}

// ResponseTypes is the code flow only: no implicit or hybrid flows.
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType { return c.grantTypes }

// LoginURL is where op would send the browser for a login; the provider's
// own authorize handler starts logins itself, so this is the callback that
// finishes one.
func (c *client) LoginURL(id string) string { return callbackURL(id) }

func (c *client) AccessTokenType() op.AccessTokenType {
	if c.cfg.TokenFormat() == config.OIDCTokenJWT {
		return op.AccessTokenTypeJWT
	}
	return op.AccessTokenTypeBearer
}

func (c *client) IDTokenLifetime() time.Duration { return c.idTokenLifetime }
func (c *client) DevMode() bool                  { return false }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

func (c *client) IsScopeAllowed(scope string) bool     { return slices.Contains(c.scopes, scope) }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return c.cfg.UserinfoInIDToken }
func (c *client) ClockSkew() time.Duration             { return 0 }

// confidential reports whether the client authenticates with a secret.
func (c *client) confidential() bool { return c.secret != nil }

// secretChecker verifies a presented client secret.
type secretChecker interface {
	check(presented string) bool
	// known reports, without a slow hash, that presented is certainly the
	// secret; false means "not known", not "wrong".
	known(presented string) bool
}

func newSecretChecker(c config.OIDCClient) (secretChecker, error) {
	if c.Secret.IsSet() {
		return plainSecret(sha256.Sum256([]byte(c.Secret.Value()))), nil
	}
	h := c.SecretHash
	switch {
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		return newCachedSecret(func(p string) bool {
			return bcrypt.CompareHashAndPassword([]byte(h), []byte(p)) == nil
		}), nil
	case strings.HasPrefix(h, "$argon2id$"):
		a, err := parseArgon2id(h)
		if err != nil {
			return nil, err
		}
		return newCachedSecret(a.check), nil
	}
	return nil, errors.New("secret_hash is neither bcrypt nor argon2id")
}

// plainSecret compares digests in constant time, so neither the secret's
// content nor its length leaks through timing.
type plainSecret [sha256.Size]byte

func (s plainSecret) check(presented string) bool {
	sum := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(sum[:], s[:]) == 1
}

func (s plainSecret) known(presented string) bool { return s.check(presented) }

// cachedSecret runs the slow hash only until the secret was once accepted:
// a client's server calls the token endpoint for every login, and bcrypt or
// argon2id on each call would make that the slowest step of a login. The
// digest of the accepted secret is kept in memory only.
type cachedSecret struct {
	slow     func(string) bool
	mu       sync.Mutex
	accepted *[sha256.Size]byte
}

func newCachedSecret(slow func(string) bool) *cachedSecret { return &cachedSecret{slow: slow} }

func (s *cachedSecret) known(presented string) bool {
	sum := sha256.Sum256([]byte(presented))
	s.mu.Lock()
	accepted := s.accepted
	s.mu.Unlock()
	return accepted != nil && subtle.ConstantTimeCompare(sum[:], accepted[:]) == 1
}

func (s *cachedSecret) check(presented string) bool {
	if s.known(presented) {
		return true
	}
	sum := sha256.Sum256([]byte(presented))
	if !s.slow(presented) {
		return false
	}
	s.mu.Lock()
	s.accepted = &sum
	s.mu.Unlock()
	return true
}

// argon2idHash is a parsed PHC string $argon2id$v=19$m=M,t=T,p=P$salt$hash.
type argon2idHash struct {
	memory, time uint32
	threads      uint8
	salt, hash   []byte
}

func parseArgon2id(h string) (*argon2idHash, error) {
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" {
		return nil, errors.New("secret_hash is not an argon2id (v=19) PHC string")
	}
	a := &argon2idHash{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("argon2id parameter %q", kv)
		}
		switch k {
		case "m":
			a.memory = uint32(n)
		case "t":
			a.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("argon2id parameter %q", kv)
			}
			a.threads = uint8(n)
		default:
			return nil, fmt.Errorf("argon2id parameter %q", kv)
		}
	}
	var err error
	if a.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return nil, fmt.Errorf("argon2id salt: %w", err)
	}
	if a.hash, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(a.hash) == 0 {
		return nil, errors.New("argon2id hash is not base64")
	}
	if a.memory == 0 || a.time == 0 || a.threads == 0 {
		return nil, errors.New("argon2id parameters m, t and p are required")
	}
	return a, nil
}

func (a *argon2idHash) check(presented string) bool {
	got := argon2.IDKey([]byte(presented), a.salt, a.time, a.memory, a.threads, uint32(len(a.hash)))
	return subtle.ConstantTimeCompare(got, a.hash) == 1
}
