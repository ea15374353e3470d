package devldap

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
)

// passwordSchemes are the userPassword storage schemes we understand, the
// salted and unsalted SHA family that OpenLDAP's slappasswd produces.
var passwordSchemes = map[string]struct {
	newHash func() hash.Hash
	salted  bool
}{
	"SHA":     {sha1.New, false},
	"SSHA":    {sha1.New, true},
	"SHA256":  {sha256.New, false},
	"SSHA256": {sha256.New, true},
	"SHA512":  {sha512.New, false},
	"SSHA512": {sha512.New, true},
}

// splitScheme splits "{SSHA}abc" into "SSHA" and "abc". A value without a
// scheme is a cleartext password and yields an empty scheme.
func splitScheme(stored string) (scheme, rest string) {
	if !strings.HasPrefix(stored, "{") {
		return "", stored
	}
	end := strings.IndexByte(stored, '}')
	if end < 0 {
		return "", stored
	}
	return strings.ToUpper(stored[1:end]), stored[end+1:]
}

// checkStoredPassword rejects userPassword values we could never verify, so
// a typo in the LDIF fails at start-up instead of as a mysterious bind error.
func checkStoredPassword(stored string) error {
	scheme, rest := splitScheme(stored)
	if scheme == "" {
		return nil
	}
	s, ok := passwordSchemes[scheme]
	if !ok {
		return fmt.Errorf("unsupported userPassword scheme {%s}", scheme)
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return fmt.Errorf("userPassword {%s}: bad base64: %w", scheme, err)
	}
	size := s.newHash().Size()
	if len(raw) < size || (!s.salted && len(raw) != size) || (s.salted && len(raw) == size) {
		return fmt.Errorf("userPassword {%s}: wrong length", scheme)
	}
	return nil
}

// passwordMatches reports whether password matches one stored userPassword
// value. Comparisons are constant-time so the dev server does not teach
// anyone to rely on timing-leaky checks.
func passwordMatches(stored, password string) bool {
	scheme, rest := splitScheme(stored)
	if scheme == "" {
		return subtle.ConstantTimeCompare([]byte(stored), []byte(password)) == 1
	}
	s, ok := passwordSchemes[scheme]
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return false
	}
	h := s.newHash()
	size := h.Size()
	if len(raw) < size {
		return false
	}
	digest, salt := raw[:size], raw[size:]
	if !s.salted && len(salt) > 0 {
		return false
	}
	h.Write([]byte(password))
	h.Write(salt)
	return subtle.ConstantTimeCompare(h.Sum(nil), digest) == 1
}
