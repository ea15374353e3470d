package oidcprovider

import (
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/store"
)

// keyStore is the part of the store that keeps signing keys.
type keyStore interface {
	ListOIDCSigningKeys(ctx context.Context, now time.Time) ([]store.OIDCSigningKey, error)
	RotateOIDCSigningKey(ctx context.Context, next store.OIDCSigningKey, expectCurrent string, now, publishUntil time.Time) error
}

// keyReload bounds how long a process signs with a key after another
// process rotated: the old key stays published far longer than this.
const keyReload = time.Minute

// keyManager holds the signing keys: it generates the first key, rotates it
// when it is older than the rotation period (or of another algorithm than
// configured), and publishes the retired ones until their tokens expired.
type keyManager struct {
	store     keyStore
	aead      cipher.AEAD
	alg       jose.SignatureAlgorithm
	rsaBits   int
	rotation  time.Duration
	retention time.Duration
	now       func() time.Time
	log       *slog.Logger

	mu       sync.Mutex
	snap     *keySnapshot
	loadedAt time.Time // wall clock; only for keyReload
}

// keySnapshot is the key set as last read from the store.
type keySnapshot struct {
	signing   *signingKey // nil if the newest key cannot be opened
	activeID  string      // the newest unretired key, opened or not
	published []op.Key
	withdraw  time.Time // when the first retired key leaves the set
}

// signingKey is the current private key (op.SigningKey).
type signingKey struct {
	id      string
	alg     jose.SignatureAlgorithm
	key     crypto.Signer
	created time.Time
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

// publicKey is a published verification key (op.Key).
type publicKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key any
}

func (k *publicKey) ID() string                         { return k.id }
func (k *publicKey) Algorithm() jose.SignatureAlgorithm { return k.alg }
func (k *publicKey) Use() string                        { return "sig" }
func (k *publicKey) Key() any                           { return k.key }

func newKeyManager(st keyStore, secret []byte, cfg config.OIDC, now func() time.Time, log *slog.Logger) (*keyManager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, err := deriveKey(secret, "signing keys")
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	// A retired key verifies tokens for as long as any token it signed can
	// live, with an hour to spare for clocks and id_token_hint at logout.
	retention := max(cfg.IDTokenLifetime, cfg.AccessTokenLifetime) + time.Hour
	return &keyManager{
		store:     st,
		aead:      aead,
		alg:       jose.SignatureAlgorithm(cfg.Keys.Algorithm),
		rsaBits:   cfg.Keys.RSABits,
		rotation:  cfg.Keys.RotationPeriod,
		retention: retention,
		now:       now,
		log:       log,
	}, nil
}

// current returns the key set, rotating first if the signing key is due.
func (m *keyManager) current(ctx context.Context) (*keySnapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap != nil && time.Since(m.loadedAt) < keyReload && !m.due(m.snap.signing) &&
		(m.snap.withdraw.IsZero() || m.now().Before(m.snap.withdraw)) {
		return m.snap, nil
	}
	snap, err := m.load(ctx)
	if err != nil {
		return nil, err
	}
	// Two tries: if another process rotated at the same moment, its key
	// is the one to use.
	for attempt := 0; m.due(snap.signing) && attempt < 2; attempt++ {
		err := m.rotate(ctx, snap.activeID)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
		if snap, err = m.load(ctx); err != nil {
			return nil, err
		}
	}
	if snap.signing == nil {
		return nil, errors.New("oidcprovider: no usable signing key")
	}
	m.snap, m.loadedAt = snap, time.Now()
	return snap, nil
}

// due reports whether k must be replaced: missing, unreadable, too old, or
// of another algorithm than configured.
func (m *keyManager) due(k *signingKey) bool {
	return k == nil || k.alg != m.alg || !m.now().Before(k.created.Add(m.rotation))
}

// load reads the published keys and opens the current signing key. A key
// that cannot be opened (security.secret_key changed) is still published
// but not used; current then rotates to a new one.
func (m *keyManager) load(ctx context.Context) (*keySnapshot, error) {
	rows, err := m.store.ListOIDCSigningKeys(ctx, m.now())
	if err != nil {
		return nil, err
	}
	snap := &keySnapshot{}
	seenActive := false
	for _, row := range rows {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(row.PublicJWK); err != nil {
			m.log.ErrorContext(ctx, "oidc signing key: unreadable public key", "kid", row.ID, "error", err)
			continue
		}
		alg := jose.SignatureAlgorithm(row.Algorithm)
		snap.published = append(snap.published, &publicKey{id: row.ID, alg: alg, key: jwk.Key})
		if !row.PublishUntil.IsZero() && (snap.withdraw.IsZero() || row.PublishUntil.Before(snap.withdraw)) {
			snap.withdraw = row.PublishUntil
		}
		// Only the newest unretired key signs; rotation retires the rest.
		if seenActive || !row.Retired.IsZero() {
			continue
		}
		seenActive = true
		snap.activeID = row.ID
		priv, err := m.openPrivate(row)
		if err != nil {
			m.log.ErrorContext(ctx, "oidc signing key: cannot open the private key (was security.secret_key changed?); rotating",
				"kid", row.ID, "error", err)
			continue
		}
		snap.signing = &signingKey{id: row.ID, alg: alg, key: priv, created: row.Created}
	}
	return snap, nil
}

func (m *keyManager) openPrivate(row store.OIDCSigningKey) (crypto.Signer, error) {
	der, err := open(m.aead, row.PrivateKey, []byte(row.ID))
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

// rotate generates a key of the configured algorithm and makes it the
// signing key, provided the current one is still expect.
func (m *keyManager) rotate(ctx context.Context, expect string) error {
	var priv crypto.Signer
	var err error
	switch m.alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, m.rsaBits)
	default:
		err = fmt.Errorf("unsupported algorithm %s", m.alg)
	}
	if err != nil {
		return fmt.Errorf("oidcprovider: generating signing key: %w", err)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: string(m.alg), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return fmt.Errorf("oidcprovider: key thumbprint: %w", err)
	}
	// The RFC 7638 thumbprint as kid: unique, and the same for anyone who
	// computes it from the published key.
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return fmt.Errorf("oidcprovider: encoding public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("oidcprovider: encoding private key: %w", err)
	}
	now := m.now()
	next := store.OIDCSigningKey{
		ID:         pub.KeyID,
		Algorithm:  string(m.alg),
		PublicJWK:  pubJSON,
		PrivateKey: seal(m.aead, der, []byte(pub.KeyID)),
		Created:    now,
	}
	if err := m.store.RotateOIDCSigningKey(ctx, next, expect, now, now.Add(m.retention)); err != nil {
		return err
	}
	m.log.InfoContext(ctx, "oidc signing key rotated", "kid", next.ID, "algorithm", next.Algorithm, "previous", expect)
	return nil
}

// signingKey returns the key that signs now.
func (m *keyManager) signingKey(ctx context.Context) (*signingKey, error) {
	snap, err := m.current(ctx)
	if err != nil {
		return nil, err
	}
	return snap.signing, nil
}

// keySet returns every published key (JWKS).
func (m *keyManager) keySet(ctx context.Context) ([]op.Key, error) {
	snap, err := m.current(ctx)
	if err != nil {
		return nil, err
	}
	return snap.published, nil
}

// algorithms lists the algorithms of the published keys, the signing
// key's first.
func (m *keyManager) algorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	snap, err := m.current(ctx)
	if err != nil {
		return nil, err
	}
	algs := []jose.SignatureAlgorithm{snap.signing.alg}
	for _, k := range snap.published {
		seen := false
		for _, a := range algs {
			seen = seen || a == k.Algorithm()
		}
		if !seen {
			algs = append(algs, k.Algorithm())
		}
	}
	return algs, nil
}
