package mfa_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/campusidp/campusidp/mfa"
)

func TestTOTPStepSkewAndReplay(t *testing.T) {
	key, err := mfa.NewTOTPKey("Example University", "alice")
	if err != nil {
		t.Fatal(err)
	}
	secret := key.Secret()
	now := time.Date(2026, 4, 1, 9, 0, 15, 0, time.UTC)
	step := now.Unix() / 30
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name     string
		code     string
		lastStep int64
		want     int64
		err      error
	}{
		{"now", code(now), 0, step, nil},
		{"one step behind", code(now.Add(-30 * time.Second)), 0, step - 1, nil},
		{"one step ahead", code(now.Add(30 * time.Second)), 0, step + 1, nil},
		{"two steps behind", code(now.Add(-60 * time.Second)), 0, 0, mfa.ErrCodeInvalid},
		{"two steps ahead", code(now.Add(60 * time.Second)), 0, 0, mfa.ErrCodeInvalid},
		{"replayed", code(now), step, 0, mfa.ErrCodeReplayed},
		{"older than the last accepted", code(now.Add(-30 * time.Second)), step, 0, mfa.ErrCodeReplayed},
		{"garbage", "12ab56", 0, 0, mfa.ErrCodeInvalid},
		{"short", "123", 0, 0, mfa.ErrCodeInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mfa.TOTPStep(secret, tc.code, now, tc.lastStep)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("got %d, %v; want %d, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestTOTPQRCodeIsAPNG(t *testing.T) {
	key, _ := mfa.NewTOTPKey("Example University", "alice")
	uri, err := mfa.TOTPQRCode(key, 200)
	if err != nil || !strings.HasPrefix(uri, "data:image/png;base64,iVBOR") {
		t.Fatalf("QR code %q... err %v", uri[:min(40, len(uri))], err)
	}
}

func TestSecretBox(t *testing.T) {
	box, err := mfa.NewSecretBox([]byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	sealed := box.Seal("JBSWY3DPEHPK3PXP", "alice")
	if strings.Contains(sealed, "JBSWY3DPEHPK3PXP") {
		t.Fatal("sealed secret contains the plaintext")
	}
	if got, err := box.Open(sealed, "alice"); err != nil || got != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := box.Open(sealed, "bob"); err == nil {
		t.Fatal("a secret sealed for alice opened for bob")
	}
	other, _ := mfa.NewSecretBox([]byte(strings.Repeat("t", 32)))
	if _, err := other.Open(sealed, "alice"); err == nil {
		t.Fatal("opened with another server secret")
	}
}

func TestRecoveryCodes(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	codes, hashes := mfa.NewRecoveryCodes(key)
	if len(codes) != mfa.RecoveryCodeCount || len(hashes) != len(codes) {
		t.Fatalf("%d codes, %d hashes", len(codes), len(hashes))
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if len(c) != 11 || c[5] != '-' || seen[c] {
			t.Fatalf("bad or repeated code %q", c)
		}
		seen[c] = true
		for _, typed := range []string{c, strings.ToUpper(c), strings.ReplaceAll(c, "-", ""), " " + c + " "} {
			if mfa.RecoveryHash(key, typed) != hashes[i] {
				t.Errorf("typed %q does not match its hash", typed)
			}
		}
	}
}
