package mfa

import (
	"encoding/hex"
	"errors"
	"slices"
	"strings"
)

// ErrKeyCloned reports an assertion whose signature counter did not move
// past the stored one: a copy of the key may be in use, or the assertion is
// replayed. The login is refused and the event audited.
var ErrKeyCloned = errors.New("mfa: security key counter did not increase (possible clone or replay)")

// CheckSignCount applies the WebAuthn signature-counter rule: once either
// the stored or the reported counter is non-zero, the reported one must be
// greater than the stored one. Authenticators that keep no counter (both
// zero, as synced passkeys do) pass; for them the single-use challenge and
// the compare-and-set update stop replays.
func CheckSignCount(stored, reported uint32) error {
	if (stored != 0 || reported != 0) && reported <= stored {
		return ErrKeyCloned
	}
	return nil
}

// KeyAMR is the RFC 8176 amr value of a key login: "swk" (software-secured
// key) for a credential that may be backed up and synced between devices,
// "hwk" (hardware-secured key) for one bound to its authenticator, such as
// a security key.
func KeyAMR(backupEligible bool) string {
	if backupEligible {
		return "swk"
	}
	return "hwk"
}

// FormatAAGUID writes a 16-byte AAGUID in the usual lower-case UUID form
// ("" for a missing or all-zero one, which names no model).
func FormatAAGUID(b []byte) string {
	if len(b) != 16 || !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
		return ""
	}
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// AAGUIDAllowed reports whether an authenticator model may be registered:
// always when allowed is empty, else only a listed one (a key that names
// no model is refused then).
func AAGUIDAllowed(aaguid []byte, allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	id := FormatAAGUID(aaguid)
	return id != "" && slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, id) })
}
