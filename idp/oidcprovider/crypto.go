package oidcprovider

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// deriveKey derives a 32-byte key for one purpose from the IdP's master
// secret, so codes, tokens and stored signing keys never share a key.
func deriveKey(secret []byte, purpose string) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, "campusidp oidc "+purpose, 32)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts plaintext with AES-GCM; the random nonce goes in front.
func seal(aead cipher.AEAD, plaintext, additional []byte) []byte {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand never fails on supported platforms
	return aead.Seal(nonce, nonce, plaintext, additional)
}

func open(aead cipher.AEAD, sealed, additional []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed value too short")
	}
	n := aead.NonceSize()
	return aead.Open(nil, sealed[:n], sealed[n:], additional)
}

// tokenAAD binds sealed codes and tokens to their purpose.
var tokenAAD = []byte("campusidp oidc code or access token v1")

// tokenCrypto is the op.Crypto of the provider: op seals the auth request
// ID into an authorization code and "tokenID:subject" into an opaque access
// token with it. Both are random-looking and unforgeable without the key;
// the store keeps only what they point to.
type tokenCrypto struct{ aead cipher.AEAD }

func newTokenCrypto(secret []byte) (*tokenCrypto, error) {
	key, err := deriveKey(secret, "tokens")
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &tokenCrypto{aead: aead}, nil
}

func (c *tokenCrypto) Encrypt(s string) (string, error) {
	return base64.RawURLEncoding.EncodeToString(seal(c.aead, []byte(s), tokenAAD)), nil
}

// Decrypt opens a sealed value. op splits a decrypted access token at ":"
// into exactly two parts, but a subject taken from a directory attribute may
// contain colons; everything after the token ID is therefore escaped. The
// provider reads subjects from its token records, never from this string.
func (c *tokenCrypto) Decrypt(s string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("oidcprovider: not a sealed value: %w", err)
	}
	plain, err := open(c.aead, raw, tokenAAD)
	if err != nil {
		return "", fmt.Errorf("oidcprovider: not a sealed value: %w", err)
	}
	id, rest, found := strings.Cut(string(plain), ":")
	if !found {
		return id, nil
	}
	return id + ":" + url.QueryEscape(rest), nil
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// digest identifies a bearer secret (a code, a refresh token) in the store
// without storing the secret itself.
func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
