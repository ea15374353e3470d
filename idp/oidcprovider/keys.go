package oidcprovider

import (
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	RetireOIDCSigningKey(ctx context.Context, id string, now, publishUntil time.Time) error
}

// keyReload bounds how long a process signs with a key after another
// process rotated: the old key stays published far longer than this.
const keyReload = time.Minute

// keyManager holds the signing keys, one per algorithm in use (the default
// and the clients' id_token_signed_response_alg): it generates each
// algorithm's first key, rotates a key when it is older than the rotation
// period, retires the keys of algorithms no longer in use, and publishes
// the retired ones until their tokens expired.
type keyManager struct {
	store keyStore
	aead  cipher.AEAD
	// algs are the algorithms in use, the default (keys.algorithm) first.
	algs      []jose.SignatureAlgorithm
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
	// signing holds the newest unretired key of each algorithm in use;
	// an algorithm is missing if it has none or it cannot be opened.
	signing map[jose.SignatureAlgorithm]*signingKey
	// activeID is the newest unretired key of each algorithm in use,
	// opened or not: the key a rotation replaces.
	activeID map[jose.SignatureAlgorithm]string
	// unused are unretired keys of algorithms no client uses any more.
	unused    []string
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
	var algs []jose.SignatureAlgorithm
	for _, a := range cfg.SigningAlgorithms() {
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	return &keyManager{
		store:     st,
		aead:      aead,
		algs:      algs,
		rsaBits:   cfg.Keys.RSABits,
		rotation:  cfg.Keys.RotationPeriod,
		retention: retention,
		now:       now,
		log:       log,
	}, nil
}

// current returns the key set, rotating first if a signing key is due.
func (m *keyManager) current(ctx context.Context) (*keySnapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap != nil && time.Since(m.loadedAt) < keyReload && !m.due(m.snap) &&
		(m.snap.withdraw.IsZero() || m.now().Before(m.snap.withdraw)) {
		return m.snap, nil
	}
	snap, err := m.load(ctx)
	if err != nil {
		return nil, err
	}
	// Two tries: if another process rotated at the same moment, its key
	// is the one to use.
	for attempt := 0; m.due(snap) && attempt < 2; attempt++ {
		for _, alg := range m.algs {
			if !m.keyDue(snap.signing[alg]) {
				continue
			}
			if err := m.rotate(ctx, alg, snap.activeID[alg]); err != nil && !errors.Is(err, store.ErrConflict) {
				return nil, err
			}
		}
		for _, id := range snap.unused {
			if err := m.store.RetireOIDCSigningKey(ctx, id, m.now(), m.now().Add(m.retention)); err != nil {
				return nil, err
			}
			m.log.InfoContext(ctx, "oidc signing key retired: no client uses its algorithm", "kid", id)
		}
		if snap, err = m.load(ctx); err != nil {
			return nil, err
		}
	}
	for _, alg := range m.algs {
		if snap.signing[alg] == nil {
			return nil, fmt.Errorf("oidcprovider: no usable %s signing key", alg)
		}
	}
	m.snap, m.loadedAt = snap, time.Now()
	return snap, nil
}

// due reports whether snap needs a change: a signing key due (keyDue), or
// a key of an algorithm no longer in use still signing.
func (m *keyManager) due(snap *keySnapshot) bool {
	for _, alg := range m.algs {
		if m.keyDue(snap.signing[alg]) {
			return true
		}
	}
	return len(snap.unused) > 0
}

// keyDue reports whether k must be replaced: missing, unreadable or too old.
func (m *keyManager) keyDue(k *signingKey) bool {
	return k == nil || !m.now().Before(k.created.Add(m.rotation))
}

// load reads the published keys and opens the current signing key of each
// algorithm in use. A key that cannot be opened (security.secret_key
// changed) is still published but not used; current then rotates to a new
// one.
func (m *keyManager) load(ctx context.Context) (*keySnapshot, error) {
	rows, err := m.store.ListOIDCSigningKeys(ctx, m.now())
	if err != nil {
		return nil, err
	}
	snap := &keySnapshot{
		signing:  map[jose.SignatureAlgorithm]*signingKey{},
		activeID: map[jose.SignatureAlgorithm]string{},
	}
	for _, row := range rows { // newest first
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
		if !row.Retired.IsZero() {
			continue
		}
		if !slices.Contains(m.algs, alg) {
			snap.unused = append(snap.unused, row.ID)
			continue
		}
		// Only the newest unretired key of an algorithm signs; its next
		// rotation retires the rest.
		if _, seen := snap.activeID[alg]; seen {
			continue
		}
		snap.activeID[alg] = row.ID
		priv, err := m.openPrivate(row)
		if err != nil {
			m.log.ErrorContext(ctx, "oidc signing key: cannot open the private key (was security.secret_key changed?); rotating",
				"kid", row.ID, "error", err)
			continue
		}
		snap.signing[alg] = &signingKey{id: row.ID, alg: alg, key: priv, created: row.Created}
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

// rotate generates a key of algorithm alg and makes it alg's signing key,
// provided the current one is still expect.
func (m *keyManager) rotate(ctx context.Context, alg jose.SignatureAlgorithm, expect string) error {
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, m.rsaBits)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		err = fmt.Errorf("unsupported algorithm %s", alg)
	}
	if err != nil {
		return fmt.Errorf("oidcprovider: generating signing key: %w", err)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: string(alg), Use: "sig"}
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
		Algorithm:  string(alg),
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

// signingKey returns the key that signs now with alg ("" for the default).
func (m *keyManager) signingKey(ctx context.Context, alg jose.SignatureAlgorithm) (*signingKey, error) {
	snap, err := m.current(ctx)
	if err != nil {
		return nil, err
	}
	if alg == "" {
		alg = m.algs[0]
	}
	k := snap.signing[alg]
	if k == nil {
		// Every client's algorithm is in m.algs: a caller asked for another.
		return nil, fmt.Errorf("oidcprovider: no %s signing key (not an algorithm in use)", alg)
	}
	return k, nil
}

// keySet returns every published key (JWKS).
func (m *keyManager) keySet(ctx context.Context) ([]op.Key, error) {
	snap, err := m.current(ctx)
	if err != nil {
		return nil, err
	}
	return snap.published, nil
}

// algorithms lists the algorithms tokens are signed with, the default
// first; it fails like signing would when the keys are unavailable.
func (m *keyManager) algorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	if _, err := m.current(ctx); err != nil {
		return nil, err
	}
	return slices.Clone(m.algs), nil
}
