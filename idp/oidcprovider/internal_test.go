package oidcprovider

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/store"
)

func TestClaimMapper(t *testing.T) {
	cfg := config.Default().OIDC
	cfg.EmailVerified = true
	cfg.Claims = append(cfg.Claims, config.OIDCClaim{Name: "eppn", Source: "attribute:uid", Scope: "eppn", Suffix: "@example.ac.jp"})
	m := newClaimMapper(cfg)
	u := &user{ID: "taro", DisplayName: "Taro Yamada", DisplayNameJA: "山田 太郎", Mail: "taro@example.ac.jp",
		Groups: []string{"staff", "students"},
		Attributes: map[string][]string{
			"uid":                        {"taro"},
			"eduPersonScopedAffiliation": {"staff@example.ac.jp", "member@example.ac.jp"},
		}}
	tests := []struct {
		name   string
		scopes []string
		want   map[string]any
	}{
		{"openid only", []string{"openid"}, map[string]any{}},
		{"profile", []string{"openid", "profile"}, map[string]any{
			"preferred_username": "taro", "name": "Taro Yamada", "name#ja": "山田 太郎"}},
		{"email with verified flag", []string{"openid", "email"}, map[string]any{"email": "taro@example.ac.jp", "email_verified": true}},
		{"groups are a list", []string{"groups"}, map[string]any{"groups": []string{"staff", "students"}}},
		{"multi-valued attribute, name in another case", []string{"eduperson_scoped_affiliation"}, map[string]any{
			"eduperson_scoped_affiliation": []string{"staff@example.ac.jp", "member@example.ac.jp"}}},
		{"missing attribute gives no claim", []string{"eduperson_principal_name"}, map[string]any{}},
		{"suffix", []string{"eppn"}, map[string]any{"eppn": "taro@example.ac.jp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := new(oidc.UserInfo)
			m.fill(info, "sub-1", u, tt.scopes)
			if info.Subject != "sub-1" {
				t.Errorf("sub = %q", info.Subject)
			}
			if len(info.Claims) != len(tt.want) {
				t.Errorf("claims %v, want %v", info.Claims, tt.want)
			}
			for k, want := range tt.want {
				if got := fmt.Sprint(info.Claims[k]); got != fmt.Sprint(want) {
					t.Errorf("%s = %v, want %v", k, info.Claims[k], want)
				}
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	cfg := config.Default().OIDC
	cfg.PairwiseSalt = config.SecretValue("pairwise-salt-0123456789")
	u := &user{ID: "alice", Attributes: map[string][]string{"entryUUID": {"0b8f6c1e-1111-4b5e-9c1a-8f6e1c2d3e4f"}}}
	mk := func(c config.OIDCClient) *client {
		cl, err := newClient(c, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	secret := config.SecretValue(strings.Repeat("s", 40))
	public := mk(config.OIDCClient{ID: "a", Secret: secret, RedirectURIs: []string{"https://a.example.ac.jp/cb"}})
	pwA := mk(config.OIDCClient{ID: "pa", Secret: secret, SubjectType: config.OIDCSubjectPairwise, RedirectURIs: []string{"https://lib.example.ac.jp/cb"}})
	pwA2 := mk(config.OIDCClient{ID: "pa2", Secret: secret, SubjectType: config.OIDCSubjectPairwise, RedirectURIs: []string{"https://LIB.example.ac.jp/other"}})
	pwB := mk(config.OIDCClient{ID: "pb", Secret: secret, SubjectType: config.OIDCSubjectPairwise, RedirectURIs: []string{"https://lms.example.ac.jp/cb"}})
	pwSector := mk(config.OIDCClient{ID: "ps", Secret: secret, SubjectType: config.OIDCSubjectPairwise, SectorIdentifier: "lib.example.ac.jp",
		RedirectURIs: []string{"https://mirror.example.org/cb"}})

	m := newClaimMapper(cfg)
	sub := func(c *client) string {
		s, err := m.subject(u, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := sub(public); got != "alice" {
		t.Errorf("public sub = %q", got)
	}
	if a, a2, b, s := sub(pwA), sub(pwA2), sub(pwB), sub(pwSector); a == b || a != a2 || a != s || a == "alice" {
		t.Errorf("pairwise subs: lib %q, lib again %q, lms %q, sector lib %q", a, a2, b, s)
	}
	cfg.PairwiseSalt = config.SecretValue("another-salt-0123456789")
	if other, _ := newClaimMapper(cfg).subject(u, pwA); other == sub(pwA) {
		t.Error("the pairwise subject does not depend on the salt")
	}

	cfg.SubjectAttribute = "entryuuid"
	m = newClaimMapper(cfg)
	if got := sub(public); got != "0b8f6c1e-1111-4b5e-9c1a-8f6e1c2d3e4f" {
		t.Errorf("attribute sub = %q", got)
	}
	if _, err := m.subject(&user{ID: "bob"}, public); !errors.Is(err, errNoSubject) {
		t.Errorf("account without the attribute: %v, want errNoSubject", err)
	}
}

func TestSecretCheckers(t *testing.T) {
	const secret = "the-client-secret-0123456789abcdef"
	bc, err := bcrypt.GenerateFromPassword([]byte(secret), 10)
	if err != nil {
		t.Fatal(err)
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(secret), salt, 2, 19*1024, 1, 32)
	phc := fmt.Sprintf("$argon2id$v=19$m=%d,t=2,p=1$%s$%s", 19*1024,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	tests := []struct {
		name string
		c    config.OIDCClient
	}{
		{"plain", config.OIDCClient{Secret: config.SecretValue(secret)}},
		{"bcrypt", config.OIDCClient{SecretHash: string(bc)}},
		{"argon2id", config.OIDCClient{SecretHash: phc}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check, err := newSecretChecker(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			// A hashed secret is not known before it was accepted once;
			// a plain one always is.
			if got, want := check.known(secret), tt.name == "plain"; got != want {
				t.Errorf("known before any check = %v, want %v", got, want)
			}
			// Twice each: the second right answer may come from the cache,
			// which must not let a wrong one through afterwards.
			for i, c := range []struct {
				presented string
				want      bool
			}{{secret + "x", false}, {secret, true}, {secret, true}, {"", false}, {secret[:len(secret)-1], false}} {
				if got := check.check(c.presented); got != c.want {
					t.Errorf("step %d: check(%q) = %v, want %v", i, c.presented, got, c.want)
				}
			}
			for _, wrong := range []string{secret + "x", "", secret[:len(secret)-1]} {
				if check.known(wrong) {
					t.Errorf("known(%q) after the right secret was accepted", wrong)
				}
			}
			if !check.known(secret) {
				t.Error("the accepted secret is not known")
			}
		})
	}
	for _, bad := range []string{"$argon2id$v=19$m=0,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=18$m=1,t=1,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=1,t=1,p=1$!!$aGFzaA", "$argon2i$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", "md5:abc"} {
		if _, err := newSecretChecker(config.OIDCClient{SecretHash: bad}); err == nil {
			t.Errorf("hash %q accepted", bad)
		}
	}
}

func TestTokenCrypto(t *testing.T) {
	c, err := newTokenCrypto([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newTokenCrypto([]byte(strings.Repeat("o", 32)))
	tests := []struct{ plain, want string }{
		{"request-id", "request-id"},
		{"token-id:alice", "token-id:alice"},
		// op splits at ":" into two parts: a subject's own colons are escaped.
		{"token-id:urn:uuid:1234", "token-id:urn%3Auuid%3A1234"},
	}
	for _, tt := range tests {
		sealed, err := c.Encrypt(tt.plain)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sealed, tt.plain) {
			t.Errorf("sealed value shows its content: %s", sealed)
		}
		again, _ := c.Encrypt(tt.plain)
		if again == sealed {
			t.Error("sealing is deterministic")
		}
		got, err := c.Decrypt(sealed)
		if err != nil || got != tt.want {
			t.Errorf("Decrypt = %q, %v; want %q", got, err, tt.want)
		}
		if _, err := other.Decrypt(sealed); err == nil {
			t.Error("another key opened the value")
		}
		tampered := []byte(sealed)
		tampered[len(tampered)/2] ^= 1
		if _, err := c.Decrypt(string(tampered)); err == nil {
			t.Error("a tampered value opened")
		}
	}
}

func TestInsecureIssuerOnlyOnLoopback(t *testing.T) {
	tests := []struct {
		issuer   string
		insecure bool
		wantErr  bool
	}{
		{"https://idp.example.ac.jp", false, false},
		{"https://idp.example.ac.jp/sso", false, false},
		{"http://127.0.0.1:8080", true, false},
		{"http://[::1]:8080", true, false},
		{"http://localhost:8080", true, false},
		{"http://idp.example.ac.jp", false, true},
		{"http://10.0.0.1", false, true},
		{"ftp://127.0.0.1", false, true},
		{"/relative", false, true},
	}
	for _, tt := range tests {
		insecure, err := insecureIssuerAllowed(tt.issuer)
		if insecure != tt.insecure || (err != nil) != tt.wantErr {
			t.Errorf("%s: insecure %v err %v; want %v, error %v", tt.issuer, insecure, err, tt.insecure, tt.wantErr)
		}
	}
}

func openTestStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "idp.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestKeyManagerRotation(t *testing.T) {
	ctx := context.Background()
	db := openTestStore(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	cfg := config.Default().OIDC
	cfg.Keys.Algorithm = config.OIDCAlgES256
	secret := []byte(strings.Repeat("k", 32))
	km := func(secret []byte, cfg config.OIDC) *keyManager {
		m, err := newKeyManager(db, secret, cfg, clock, nil)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	kids := func(keys []op.Key) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k.ID())
		}
		return out
	}

	first := km(secret, cfg)
	k1, err := first.signingKey(ctx, "")
	if err != nil || k1.alg != jose.ES256 {
		t.Fatalf("first key %+v, %v", k1, err)
	}
	// Another process with the same secret uses the same key.
	if k, _ := km(secret, cfg).signingKey(ctx, ""); k.id != k1.id {
		t.Fatalf("second process signs with %s, want %s", k.id, k1.id)
	}

	// After the rotation period the key is replaced; the old one stays
	// published.
	now = now.Add(cfg.Keys.RotationPeriod)
	k2, _ := first.signingKey(ctx, "")
	set, _ := first.keySet(ctx)
	if k2.id == k1.id || !slices.Equal(kids(set), []string{k2.id, k1.id}) {
		t.Fatalf("after the period: signing %s, published %q", k2.id, kids(set))
	}

	// A changed algorithm replaces the key at once: the ES256 key, of an
	// algorithm no longer in use, is retired and stays published.
	cfg.Keys.Algorithm = config.OIDCAlgRS256
	k3, err := km(secret, cfg).signingKey(ctx, "")
	if err != nil || k3.alg != jose.RS256 {
		t.Fatalf("after the algorithm change: %+v, %v", k3, err)
	}
	algs, _ := km(secret, cfg).algorithms(ctx)
	if !slices.Equal(algs, []jose.SignatureAlgorithm{jose.RS256}) {
		t.Errorf("algorithms %q", algs)
	}
	rows, _ := db.ListOIDCSigningKeys(ctx, now)
	for _, row := range rows {
		if row.ID == k2.id && row.Retired.IsZero() {
			t.Errorf("the ES256 key still signs after the change to RS256")
		}
	}
	set, _ = km(secret, cfg).keySet(ctx)
	if got, want := slices.Sorted(slices.Values(kids(set))), slices.Sorted(slices.Values([]string{k3.id, k2.id, k1.id})); !slices.Equal(got, want) {
		t.Errorf("published after the change: %q, want %q", got, want)
	}

	// A key that cannot be opened (the secret changed) is replaced and
	// stays published for the tokens it signed.
	k4, err := km([]byte(strings.Repeat("x", 32)), cfg).signingKey(ctx, "")
	if err != nil || k4.id == k3.id {
		t.Fatalf("with another secret: %+v, %v", k4, err)
	}
	set, _ = km([]byte(strings.Repeat("x", 32)), cfg).keySet(ctx)
	if !slices.Contains(kids(set), k3.id) {
		t.Errorf("the unreadable key left the key set: %q", kids(set))
	}
}
