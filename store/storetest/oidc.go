package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

func testOIDC(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	grant := func(id string) store.OIDCGrant {
		return store.OIDCGrant{ID: id, ClientID: "portal", UserID: "alice", Created: t0, Expires: t0.Add(24 * time.Hour)}
	}
	token := func(id, kind string, life time.Duration) store.OIDCToken {
		return store.OIDCToken{ID: id, Kind: kind, Data: []byte(`{"scope":"openid"}`), Created: t0, Expires: t0.Add(life)}
	}

	t.Run("GrantTokensReadBack", func(t *testing.T) {
		db := open(t)
		if err := db.CreateOIDCGrant(ctx, grant("g1"), token("at1", store.OIDCAccessToken, time.Hour),
			token("rt1", store.OIDCRefreshToken, 2*time.Hour)); err != nil {
			t.Fatalf("CreateOIDCGrant: %v", err)
		}
		tests := []struct {
			name     string
			id       string
			now      time.Time
			wantKind string
			wantErr  error
		}{
			{"access token", "at1", t0, store.OIDCAccessToken, nil},
			{"refresh token", "rt1", t0.Add(90 * time.Minute), store.OIDCRefreshToken, nil},
			{"access token at expiry", "at1", t0.Add(time.Hour), "", store.ErrNotFound},
			{"unknown", "nope", t0, "", store.ErrNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := db.GetOIDCToken(ctx, tc.id, tc.now)
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("GetOIDCToken err = %v, want %v", err, tc.wantErr)
				}
				if err != nil {
					return
				}
				if got.Kind != tc.wantKind || got.GrantID != "g1" || got.ClientID != "portal" || got.UserID != "alice" ||
					string(got.Data) != `{"scope":"openid"}` || !got.Created.Equal(t0) || !got.Used.IsZero() {
					t.Fatalf("GetOIDCToken = %+v", got)
				}
			})
		}
	})

	t.Run("GrantIDIsNeverReused", func(t *testing.T) {
		db := open(t)
		if err := db.CreateOIDCGrant(ctx, grant("g1"), token("at1", store.OIDCAccessToken, time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateOIDCGrant(ctx, grant("g1"), token("at2", store.OIDCAccessToken, time.Hour)); !errors.Is(err, store.ErrGrantExists) {
			t.Fatalf("second CreateOIDCGrant err = %v, want ErrGrantExists", err)
		}
		if _, err := db.GetOIDCToken(ctx, "at2", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token of the refused grant was stored: %v", err)
		}
		// A grant revoked before it was created (a code replayed while its
		// first redemption is under way) can never be created.
		if err := db.RevokeOIDCGrant(ctx, "g2", t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateOIDCGrant(ctx, grant("g2"), token("at3", store.OIDCAccessToken, time.Hour)); !errors.Is(err, store.ErrGrantExists) {
			t.Fatalf("CreateOIDCGrant of a revoked ID err = %v, want ErrGrantExists", err)
		}
	})

	t.Run("InvalidInput", func(t *testing.T) {
		db := open(t)
		tests := []struct {
			name   string
			g      store.OIDCGrant
			tokens []store.OIDCToken
		}{
			{"no grant ID", store.OIDCGrant{ClientID: "c", Expires: t0}, nil},
			{"no client", store.OIDCGrant{ID: "g", Expires: t0}, nil},
			{"no expiry", store.OIDCGrant{ID: "g", ClientID: "c"}, nil},
			{"bad token kind", grant("g3"), []store.OIDCToken{token("x", "id", time.Hour)}},
			{"token without ID", grant("g4"), []store.OIDCToken{token("", store.OIDCAccessToken, time.Hour)}},
		}
		for _, tc := range tests {
			if err := db.CreateOIDCGrant(ctx, tc.g, tc.tokens...); err == nil {
				t.Errorf("%s: CreateOIDCGrant succeeded", tc.name)
			}
		}
		// A refused token leaves no grant behind.
		if err := db.CreateOIDCGrant(ctx, grant("g3")); err != nil {
			t.Fatalf("grant of a failed transaction was kept: %v", err)
		}
	})

	t.Run("RefreshRotation", func(t *testing.T) {
		db := open(t)
		if err := db.CreateOIDCGrant(ctx, grant("g1"), token("rt1", store.OIDCRefreshToken, time.Hour)); err != nil {
			t.Fatal(err)
		}
		now := t0.Add(time.Minute)
		if err := db.RotateOIDCRefreshToken(ctx, "rt1", now, token("rt2", store.OIDCRefreshToken, 2*time.Hour),
			token("at2", store.OIDCAccessToken, time.Hour)); err != nil {
			t.Fatalf("RotateOIDCRefreshToken: %v", err)
		}
		old, err := db.GetOIDCToken(ctx, "rt1", now)
		if err != nil || !old.Used.Equal(now) {
			t.Fatalf("rotated token = %+v, %v; want Used = %v", old, err, now)
		}
		if got, err := db.GetOIDCToken(ctx, "rt2", now); err != nil || got.GrantID != "g1" || got.UserID != "alice" {
			t.Fatalf("new refresh token = %+v, %v", got, err)
		}
		tests := []struct {
			name    string
			id      string
			now     time.Time
			wantErr error
		}{
			{"replay of the rotated token", "rt1", now, store.ErrTokenUsed},
			{"unknown token", "nope", now, store.ErrNotFound},
			{"access token is no refresh token", "at2", now, store.ErrNotFound},
			{"expired token", "rt2", t0.Add(2 * time.Hour), store.ErrNotFound},
		}
		for _, tc := range tests {
			err := db.RotateOIDCRefreshToken(ctx, tc.id, tc.now, token("new-"+tc.name, store.OIDCRefreshToken, time.Hour))
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.wantErr)
			}
			if _, err := db.GetOIDCToken(ctx, "new-"+tc.name, now); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: a refused rotation stored its new token", tc.name)
			}
		}
		if err := db.RevokeOIDCGrant(ctx, "g1", now, t0.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"rt1", "rt2", "at2"} {
			if _, err := db.GetOIDCToken(ctx, id, now); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("token %s of a revoked grant still readable: %v", id, err)
			}
		}
	})

	t.Run("RotationOfRevokedGrant", func(t *testing.T) {
		db := open(t)
		if err := db.CreateOIDCGrant(ctx, grant("g1"), token("rt1", store.OIDCRefreshToken, time.Hour)); err != nil {
			t.Fatal(err)
		}
		// Revoke by a path that keeps the token row (the user's grants).
		if _, err := db.RevokeOIDCUserGrants(ctx, "alice", "", t0); err != nil {
			t.Fatal(err)
		}
		if err := db.RotateOIDCRefreshToken(ctx, "rt1", t0, token("rt2", store.OIDCRefreshToken, time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rotation in a revoked grant err = %v, want ErrNotFound", err)
		}
	})

	t.Run("ConcurrentRotationHasOneWinner", func(t *testing.T) {
		db := open(t)
		if err := db.CreateOIDCGrant(ctx, grant("g1"), token("rt1", store.OIDCRefreshToken, time.Hour)); err != nil {
			t.Fatal(err)
		}
		const racers = 12
		var wg sync.WaitGroup
		errs := make([]error, racers)
		start := make(chan struct{})
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = db.RotateOIDCRefreshToken(ctx, "rt1", t0, token(fmt.Sprintf("next%d", i), store.OIDCRefreshToken, time.Hour))
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, store.ErrTokenUsed):
				t.Errorf("racer %d: %v", i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("%d rotations of one token succeeded, want exactly 1", winners)
		}
	})

	t.Run("DeleteToken", func(t *testing.T) {
		db := open(t)
		if err := db.CreateOIDCGrant(ctx, grant("g1"), token("at1", store.OIDCAccessToken, time.Hour),
			token("rt1", store.OIDCRefreshToken, time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteOIDCToken(ctx, "at1"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.GetOIDCToken(ctx, "at1", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted token readable: %v", err)
		}
		if _, err := db.GetOIDCToken(ctx, "rt1", t0); err != nil {
			t.Fatalf("DeleteOIDCToken removed another token of the grant: %v", err)
		}
		if err := db.DeleteOIDCToken(ctx, "at1"); err != nil {
			t.Fatalf("deleting a missing token: %v", err)
		}
	})

	t.Run("RevokeUserGrants", func(t *testing.T) {
		db := open(t)
		mk := func(id, client, user string) {
			g := store.OIDCGrant{ID: id, ClientID: client, UserID: user, Created: t0, Expires: t0.Add(time.Hour)}
			if err := db.CreateOIDCGrant(ctx, g, token("at-"+id, store.OIDCAccessToken, time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		mk("a-portal", "portal", "alice")
		mk("a-lms", "lms", "alice")
		mk("b-portal", "portal", "bob")
		n, err := db.RevokeOIDCUserGrants(ctx, "alice", "portal", t0)
		if err != nil || n != 1 {
			t.Fatalf("RevokeOIDCUserGrants(alice, portal) = %d, %v; want 1", n, err)
		}
		n, err = db.RevokeOIDCUserGrants(ctx, "alice", "", t0)
		if err != nil || n != 1 {
			t.Fatalf("RevokeOIDCUserGrants(alice, all) = %d, %v; want the remaining 1", n, err)
		}
		for id, wantLive := range map[string]bool{"at-a-portal": false, "at-a-lms": false, "at-b-portal": true} {
			_, err := db.GetOIDCToken(ctx, id, t0)
			if live := err == nil; live != wantLive {
				t.Errorf("%s live = %v (%v), want %v", id, live, err, wantLive)
			}
		}
		if _, err := db.RevokeOIDCUserGrants(ctx, "", "", t0); err == nil {
			t.Error("RevokeOIDCUserGrants with no user succeeded")
		}
	})

	t.Run("SigningKeys", func(t *testing.T) {
		db := open(t)
		key := func(id string, created time.Time) store.OIDCSigningKey {
			return store.OIDCSigningKey{ID: id, Algorithm: "RS256", PublicJWK: []byte(`{"kid":"` + id + `"}`),
				PrivateKey: []byte("sealed-" + id), Created: created}
		}
		if keys, err := db.ListOIDCSigningKeys(ctx, t0); err != nil || len(keys) != 0 {
			t.Fatalf("fresh store keys = %v, %v", keys, err)
		}
		if err := db.RotateOIDCSigningKey(ctx, key("k1", t0), "", t0, time.Time{}); err != nil {
			t.Fatalf("first key: %v", err)
		}
		later := t0.Add(30 * 24 * time.Hour)
		until := later.Add(2 * time.Hour)
		tests := []struct {
			name    string
			next    string
			expect  string
			wantErr error
		}{
			{"expected current is stale", "k-stale", "", store.ErrConflict},
			{"another process rotated", "k-other", "k0", store.ErrConflict},
			{"rotation", "k2", "k1", nil},
		}
		for _, tc := range tests {
			err := db.RotateOIDCSigningKey(ctx, key(tc.next, later), tc.expect, later, until)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("%s: err = %v, want %v", tc.name, err, tc.wantErr)
			}
		}
		keys, err := db.ListOIDCSigningKeys(ctx, later)
		if err != nil || len(keys) != 2 {
			t.Fatalf("keys after rotation = %+v, %v", keys, err)
		}
		newest, old := keys[0], keys[1]
		if newest.ID != "k2" || !newest.Retired.IsZero() || !newest.PublishUntil.IsZero() || string(newest.PrivateKey) != "sealed-k2" {
			t.Errorf("signing key = %+v", newest)
		}
		if old.ID != "k1" || !old.Retired.Equal(later) || !old.PublishUntil.Equal(until) || string(old.PublicJWK) != `{"kid":"k1"}` {
			t.Errorf("retired key = %+v", old)
		}
		if keys, _ := db.ListOIDCSigningKeys(ctx, until); len(keys) != 1 || keys[0].ID != "k2" {
			t.Errorf("at publish_until the retired key is still listed: %+v", keys)
		}
		if err := db.RotateOIDCSigningKey(ctx, store.OIDCSigningKey{ID: "k3"}, "k2", later, until); err == nil {
			t.Error("an incomplete key was accepted")
		}
	})

	t.Run("SigningKeysPerAlgorithm", func(t *testing.T) {
		db := open(t)
		key := func(id, alg string, created time.Time) store.OIDCSigningKey {
			return store.OIDCSigningKey{ID: id, Algorithm: alg, PublicJWK: []byte(`{"kid":"` + id + `"}`),
				PrivateKey: []byte("sealed-" + id), Created: created}
		}
		t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
		until := t2.Add(time.Hour)
		// Each algorithm has its own current key: the first ES256 key
		// expects none, though an RS256 key signs.
		for _, step := range []struct {
			next   store.OIDCSigningKey
			expect string
		}{
			{key("rs1", "RS256", t0), ""},
			{key("es1", "ES256", t1), ""},
			{key("es2", "ES256", t2), "es1"},
		} {
			if err := db.RotateOIDCSigningKey(ctx, step.next, step.expect, step.next.Created, until); err != nil {
				t.Fatalf("rotate to %s expecting %q: %v", step.next.ID, step.expect, err)
			}
		}
		if err := db.RotateOIDCSigningKey(ctx, key("rs-x", "RS256", t2), "", t2, until); !errors.Is(err, store.ErrConflict) {
			t.Errorf("RS256 rotation expecting none while rs1 signs: %v, want ErrConflict", err)
		}
		state := func() map[string]bool { // id -> retired
			t.Helper()
			keys, err := db.ListOIDCSigningKeys(ctx, t2)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]bool{}
			for _, k := range keys {
				out[k.ID] = !k.Retired.IsZero()
			}
			return out
		}
		if got, want := state(), map[string]bool{"rs1": false, "es1": true, "es2": false}; !maps.Equal(got, want) {
			t.Fatalf("after rotating ES256: retired = %v, want %v", got, want)
		}

		// Retiring a key without successor: it stays published.
		if err := db.RetireOIDCSigningKey(ctx, "es2", t2, until); err != nil {
			t.Fatal(err)
		}
		if err := db.RetireOIDCSigningKey(ctx, "es2", until, until.Add(time.Hour)); err != nil {
			t.Fatal(err) // a second retirement changes nothing
		}
		if got, want := state(), map[string]bool{"rs1": false, "es1": true, "es2": true}; !maps.Equal(got, want) {
			t.Fatalf("after retiring es2: retired = %v, want %v", got, want)
		}
		if keys, _ := db.ListOIDCSigningKeys(ctx, until); len(keys) != 1 || keys[0].ID != "rs1" {
			t.Errorf("at publish_until: %+v, want rs1 only", keys)
		}
		// With none left signing, the next ES256 key expects none.
		if err := db.RotateOIDCSigningKey(ctx, key("es3", "ES256", t2), "", t2, until); err != nil {
			t.Errorf("new ES256 key after retirement: %v", err)
		}
	})

	t.Run("DeleteExpired", func(t *testing.T) {
		db := open(t)
		short := store.OIDCGrant{ID: "short", ClientID: "c", UserID: "u", Created: t0, Expires: t0.Add(time.Hour)}
		long := store.OIDCGrant{ID: "long", ClientID: "c", UserID: "u", Created: t0, Expires: t0.Add(48 * time.Hour)}
		if err := db.CreateOIDCGrant(ctx, short, token("s-at", store.OIDCAccessToken, time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateOIDCGrant(ctx, long, token("l-at", store.OIDCAccessToken, time.Hour),
			token("l-rt", store.OIDCRefreshToken, 48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		key := store.OIDCSigningKey{ID: "k1", Algorithm: "ES256", PublicJWK: []byte("{}"), PrivateKey: []byte("x"), Created: t0}
		if err := db.RotateOIDCSigningKey(ctx, key, "", t0, time.Time{}); err != nil {
			t.Fatal(err)
		}
		key.ID = "k2"
		if err := db.RotateOIDCSigningKey(ctx, key, "k1", t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		n, err := db.DeleteExpiredOIDC(ctx, t0.Add(time.Hour))
		// s-at, l-at, the short grant and the retired key k1.
		if err != nil || n != 4 {
			t.Fatalf("DeleteExpiredOIDC = %d, %v; want 4", n, err)
		}
		if _, err := db.GetOIDCToken(ctx, "l-rt", t0.Add(2*time.Hour)); err != nil {
			t.Errorf("live refresh token removed: %v", err)
		}
		if keys, _ := db.ListOIDCSigningKeys(ctx, t0); len(keys) != 1 || keys[0].ID != "k2" {
			t.Errorf("keys after clean-up = %+v", keys)
		}
		// The expired grant's ID is free again only after it expired.
		if err := db.CreateOIDCGrant(ctx, short); err != nil {
			t.Errorf("grant ID of an expired, removed grant: %v", err)
		}
	})
}
