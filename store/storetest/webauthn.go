package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/store"
)

func testWebAuthn(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	cred := func(id, user string, created time.Time) store.WebAuthnCredential {
		return store.WebAuthnCredential{ID: id, UserID: user, UserHandle: []byte("handle-" + user), Name: "key " + id,
			AAGUID: "00112233445566778899aabbccddeeff", SignCount: 5, Data: []byte(`{"k":"` + id + `"}`), Created: created}
	}
	add := func(t *testing.T, db Store, c store.WebAuthnCredential) {
		t.Helper()
		if err := db.AddWebAuthnCredential(ctx, c); err != nil {
			t.Fatalf("AddWebAuthnCredential(%s): %v", c.ID, err)
		}
	}

	t.Run("AddListGet", func(t *testing.T) {
		db := open(t)
		add(t, db, cred("c2", "alice", t0.Add(time.Minute)))
		add(t, db, cred("c1", "alice", t0))
		add(t, db, cred("c3", "bob", t0))
		if err := db.AddWebAuthnCredential(ctx, cred("c1", "bob", t0)); !errors.Is(err, store.ErrCredentialExists) {
			t.Fatalf("adding a taken ID: err = %v, want ErrCredentialExists", err)
		}
		list, err := db.WebAuthnCredentials(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != "c1" || list[1].ID != "c2" {
			t.Fatalf("alice's credentials = %+v, want c1, c2 (oldest first)", list)
		}
		c := list[0]
		if c.UserID != "alice" || !bytes.Equal(c.UserHandle, []byte("handle-alice")) || c.Name != "key c1" ||
			c.AAGUID != "00112233445566778899aabbccddeeff" || c.SignCount != 5 || c.Uses != 0 ||
			string(c.Data) != `{"k":"c1"}` || !c.Created.Equal(t0) || !c.LastUsed.IsZero() {
			t.Fatalf("read back %+v", c)
		}
		got, err := db.GetWebAuthnCredential(ctx, "c3")
		if err != nil || got.UserID != "bob" {
			t.Fatalf("GetWebAuthnCredential(c3) = %+v, %v", got, err)
		}
		if _, err := db.GetWebAuthnCredential(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown credential: err = %v, want ErrNotFound", err)
		}
		if list, err := db.WebAuthnCredentials(ctx, "carol"); err != nil || len(list) != 0 {
			t.Fatalf("carol's credentials = %v, %v; want none", list, err)
		}
	})

	t.Run("UseComparesAndSets", func(t *testing.T) {
		db := open(t)
		add(t, db, cred("c1", "alice", t0))
		if err := db.UseWebAuthnCredential(ctx, "c1", 0, 9, []byte(`{"n":9}`), t0.Add(time.Hour)); err != nil {
			t.Fatalf("first use: %v", err)
		}
		// A second assertion checked against the state before the first
		// (a replay racing it) must not pass.
		if err := db.UseWebAuthnCredential(ctx, "c1", 0, 10, []byte(`{"n":10}`), t0.Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale use: err = %v, want ErrConflict", err)
		}
		c, err := db.GetWebAuthnCredential(ctx, "c1")
		if err != nil || c.SignCount != 9 || c.Uses != 1 || string(c.Data) != `{"n":9}` || !c.LastUsed.Equal(t0.Add(time.Hour)) {
			t.Fatalf("after use: %+v, %v", c, err)
		}
		if err := db.UseWebAuthnCredential(ctx, "gone", 0, 1, []byte("x"), t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown credential: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("ParallelUseOnlyOneWins", func(t *testing.T) {
		db := open(t)
		add(t, db, cred("c1", "alice", t0))
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				errs[i] = db.UseWebAuthnCredential(ctx, "c1", 0, uint32(6+i), []byte("x"), t0)
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("parallel use: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d parallel uses of one state passed, want 1", won, n)
		}
	})

	t.Run("RenameAndDeleteOnlyOwn", func(t *testing.T) {
		db := open(t)
		add(t, db, cred("c1", "alice", t0))
		add(t, db, cred("c2", "alice", t0))
		add(t, db, cred("c3", "bob", t0))
		if err := db.RenameWebAuthnCredential(ctx, "bob", "c1", "mine now"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("renaming another user's key: err = %v, want ErrNotFound", err)
		}
		if err := db.RenameWebAuthnCredential(ctx, "alice", "c1", "iPhone"); err != nil {
			t.Fatal(err)
		}
		if c, _ := db.GetWebAuthnCredential(ctx, "c1"); c.Name != "iPhone" {
			t.Fatalf("name = %q after rename", c.Name)
		}
		if err := db.DeleteWebAuthnCredential(ctx, "bob", "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting another user's key: err = %v, want ErrNotFound", err)
		}
		if err := db.DeleteWebAuthnCredential(ctx, "alice", "c1"); err != nil {
			t.Fatal(err)
		}
		n, err := db.DeleteUserWebAuthnCredentials(ctx, "alice")
		if err != nil || n != 1 {
			t.Fatalf("DeleteUserWebAuthnCredentials = %d, %v; want 1", n, err)
		}
		if list, _ := db.WebAuthnCredentials(ctx, "alice"); len(list) != 0 {
			t.Fatalf("alice keeps %v", list)
		}
		if _, err := db.GetWebAuthnCredential(ctx, "c3"); err != nil {
			t.Fatalf("bob's key went too: %v", err)
		}
	})
}
