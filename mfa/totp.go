package mfa

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP settings: the RFC 6238 defaults every authenticator app understands.
const (
	totpPeriod = 30 * time.Second
	totpDigits = otp.DigitsSix
	totpSkew   = 1 // steps either side of now
)

// ErrCodeReplayed: the code (or an earlier one) was already accepted.
var ErrCodeReplayed = errors.New("mfa: code already used")

// NewTOTPKey creates a new authenticator-app secret for account, labelled
// with issuer in the app.
func NewTOTPKey(issuer, account string) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      uint(totpPeriod / time.Second),
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
		SecretSize:  20,
	})
}

// TOTPQRCode renders the key's otpauth:// URL as a PNG data: URI, drawn on
// the server so no third-party service ever sees the secret.
func TOTPQRCode(key *otp.Key, size int) (string, error) {
	img, err := key.Image(size, size)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// TOTPStep returns the time step a valid code belongs to, looking one step
// either side of now for clock skew. A step at or before lastStep is refused
// so a code can never be accepted twice.
func TOTPStep(secret, code string, now time.Time, lastStep int64) (int64, error) {
	code = NormalizeCode(code)
	if len(code) != int(totpDigits) {
		return 0, ErrCodeInvalid
	}
	current := now.Unix() / int64(totpPeriod/time.Second)
	matched := int64(-1)
	for step := current - totpSkew; step <= current+totpSkew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*int64(totpPeriod/time.Second), 0), totp.ValidateOpts{
			Period: uint(totpPeriod / time.Second), Digits: totpDigits, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil {
			return 0, fmt.Errorf("mfa: totp secret: %w", err)
		}
		// Compare all candidates in constant time; remember the match.
		if hmac.Equal([]byte(want), []byte(code)) {
			matched = step
		}
	}
	switch {
	case matched < 0:
		return 0, ErrCodeInvalid
	case matched <= lastStep:
		return 0, ErrCodeReplayed
	}
	return matched, nil
}

// SecretBox encrypts factor secrets at rest (AES-256-GCM) with a key
// derived from the server secret, so a copy of the database alone does not
// yield working authenticator secrets.
type SecretBox struct{ aead cipher.AEAD }

// NewSecretBox derives the encryption key from the server secret.
func NewSecretBox(serverSecret []byte) (*SecretBox, error) {
	if len(serverSecret) < 16 {
		return nil, errors.New("mfa: server secret too short")
	}
	m := hmac.New(sha256.New, serverSecret)
	m.Write([]byte("campusidp totp secret encryption v1"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &SecretBox{aead: aead}, nil
}

// Seal encrypts plaintext bound to context (e.g. the user ID), so a sealed
// secret copied to another account does not open.
func (b *SecretBox) Seal(plaintext, context string) string {
	nonce := make([]byte, b.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := b.aead.Seal(nonce, nonce, []byte(plaintext), []byte(context))
	return base64.RawStdEncoding.EncodeToString(out)
}

// Open decrypts what Seal produced for the same context.
func (b *SecretBox) Open(sealed, context string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", errors.New("mfa: sealed secret malformed")
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(context))
	if err != nil {
		return "", errors.New("mfa: sealed secret does not open")
	}
	return string(plain), nil
}

// RecoveryCodeCount is how many recovery codes a user gets at a time.
const RecoveryCodeCount = 10

var recoveryEncoding = base32.NewEncoding("abcdefghjkmnpqrstuvwxyz023456789").WithPadding(base32.NoPadding)

// NewRecoveryCodes returns fresh recovery codes (shown once) and their keyed
// hashes (stored). Each code carries 50 random bits, written xxxxx-xxxxx.
func NewRecoveryCodes(key []byte) (codes, hashes []string) {
	for i := 0; i < RecoveryCodeCount; i++ {
		b := make([]byte, 7)
		_, _ = rand.Read(b)
		s := recoveryEncoding.EncodeToString(b)[:10]
		codes = append(codes, s[:5]+"-"+s[5:])
		hashes = append(hashes, RecoveryHash(key, s))
	}
	return codes, hashes
}

// RecoveryHash is the stored form of a recovery code, as typed or printed.
func RecoveryHash(key []byte, code string) string {
	norm := strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(code)))
	m := hmac.New(sha256.New, key)
	m.Write([]byte("recovery\x00"))
	m.Write([]byte(norm))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}
