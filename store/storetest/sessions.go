package storetest

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/campusidp/campusidp/store"
)

func testSessions(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("CommitFindDelete", func(t *testing.T) {
		db := open(t)
		s := db.Sessions()
		live := time.Now().Add(time.Hour)
		steps := []struct {
			name      string
			do        func() error
			token     string
			wantFound bool
			wantData  string
		}{
			{"unknown token", nil, "t1", false, ""},
			{"committed", func() error { return s.CommitCtx(ctx, "t1", []byte("one"), live) }, "t1", true, "one"},
			{"overwritten", func() error { return s.CommitCtx(ctx, "t1", []byte("two"), live) }, "t1", true, "two"},
			{"other token unaffected", func() error { return s.CommitCtx(ctx, "t2", []byte("x"), live) }, "t1", true, "two"},
			{"commit with past expiry", func() error { return s.CommitCtx(ctx, "t1", []byte("two"), time.Now().Add(-time.Second)) }, "t1", false, ""},
			{"revived", func() error { return s.CommitCtx(ctx, "t1", []byte("three"), live) }, "t1", true, "three"},
			{"deleted", func() error { return s.DeleteCtx(ctx, "t1") }, "t1", false, ""},
			{"delete of unknown token", func() error { return s.DeleteCtx(ctx, "nope") }, "t2", true, "x"},
		}
		for _, st := range steps {
			if st.do != nil {
				if err := st.do(); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
			}
			data, found, err := s.FindCtx(ctx, st.token)
			if err != nil || found != st.wantFound || string(data) != st.wantData {
				t.Fatalf("%s: FindCtx(%s) = %q, %v, %v; want %q, %v, nil", st.name, st.token, data, found, err, st.wantData, st.wantFound)
			}
		}
	})

	t.Run("ContextFreeMethods", func(t *testing.T) {
		db := open(t)
		s := db.Sessions()
		if err := s.Commit("t", []byte("d"), time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if data, found, err := s.Find("t"); err != nil || !found || string(data) != "d" {
			t.Fatalf("Find = %q, %v, %v", data, found, err)
		}
		if all, err := s.All(); err != nil || len(all) != 1 {
			t.Fatalf("All = %v, %v", all, err)
		}
		if err := s.Delete("t"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, found, err := s.Find("t"); err != nil || found {
			t.Fatalf("Find after Delete: found=%v err=%v", found, err)
		}
	})

	t.Run("AllReturnsLiveSessionsOnly", func(t *testing.T) {
		db := open(t)
		s := db.Sessions()
		all, err := s.AllCtx(ctx)
		if err != nil || all == nil || len(all) != 0 {
			t.Fatalf("AllCtx on empty store = %#v, %v; want an empty non-nil map", all, err)
		}
		live := time.Now().Add(time.Hour)
		for token, expiry := range map[string]time.Time{"a": live, "b": live, "old": time.Now().Add(-time.Minute)} {
			if err := s.CommitCtx(ctx, token, []byte("data-"+token), expiry); err != nil {
				t.Fatal(err)
			}
		}
		all, err = s.AllCtx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]byte{"a": []byte("data-a"), "b": []byte("data-b")}
		if !maps.EqualFunc(all, want, func(x, y []byte) bool { return string(x) == string(y) }) {
			t.Fatalf("AllCtx = %q, want %q", all, want)
		}
	})

	t.Run("DeleteUserSessions", func(t *testing.T) {
		db := open(t)
		s := db.Sessions()
		live := time.Now().Add(time.Hour)
		bindings := []struct{ token, user string }{
			{"alice-1", "alice"}, {"alice-2", "alice"}, {"alice-current", "alice"},
			{"bob-1", "bob"},
			{"moved", "alice"}, {"moved", "bob"}, // rebinding replaces the user
		}
		for _, b := range bindings {
			// Bind before commit, as happens when scs renews a token: the new
			// token reaches the store only at the end of the request.
			if err := db.BindSessionUser(ctx, b.token, b.user); err != nil {
				t.Fatalf("BindSessionUser: %v", err)
			}
		}
		for _, token := range []string{"alice-1", "alice-2", "alice-current", "bob-1", "moved", "anonymous"} {
			if err := s.CommitCtx(ctx, token, []byte(token), live); err != nil {
				t.Fatal(err)
			}
		}
		// An expired session of alice's is removed but not counted as ended.
		if err := db.BindSessionUser(ctx, "alice-stale", "alice"); err != nil {
			t.Fatal(err)
		}
		if err := s.CommitCtx(ctx, "alice-stale", []byte("x"), time.Now().Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}

		n, err := db.DeleteUserSessions(ctx, "alice", "alice-current")
		if err != nil || n != 2 {
			t.Fatalf("DeleteUserSessions(alice) = %d, %v; want 2", n, err)
		}
		assertLiveTokens(t, s, "alice-current", "anonymous", "bob-1", "moved")

		// The binding of the kept session survives; ending all of alice's
		// sessions now takes the current one too.
		if n, err := db.DeleteUserSessions(ctx, "alice", ""); err != nil || n != 1 {
			t.Fatalf("DeleteUserSessions(alice, \"\") = %d, %v; want 1", n, err)
		}
		assertLiveTokens(t, s, "anonymous", "bob-1", "moved")

		if n, err := db.DeleteUserSessions(ctx, "nobody", ""); err != nil || n != 0 {
			t.Fatalf("DeleteUserSessions(nobody) = %d, %v; want 0", n, err)
		}
	})

	t.Run("DeleteDropsBinding", func(t *testing.T) {
		db := open(t)
		s := db.Sessions()
		if err := db.BindSessionUser(ctx, "t", "alice"); err != nil {
			t.Fatal(err)
		}
		if err := s.CommitCtx(ctx, "t", []byte("old"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteCtx(ctx, "t"); err != nil {
			t.Fatal(err)
		}
		// Should the token ever be committed again unbound, it is no longer
		// alice's: the binding went with the session.
		if err := s.CommitCtx(ctx, "t", []byte("new"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n, err := db.DeleteUserSessions(ctx, "alice", ""); err != nil || n != 0 {
			t.Fatalf("DeleteUserSessions = %d, %v; want 0 after the session was deleted", n, err)
		}
		assertLiveTokens(t, s, "t")
	})

	t.Run("InvalidBind", func(t *testing.T) {
		db := open(t)
		for _, b := range []struct{ token, user string }{{"", "alice"}, {"t", ""}} {
			if err := db.BindSessionUser(ctx, b.token, b.user); err == nil {
				t.Errorf("BindSessionUser(%q, %q) succeeded, want an error", b.token, b.user)
			}
		}
	})

	t.Run("WithSCSManager", func(t *testing.T) {
		db := open(t)
		sm := scs.New()
		sm.Store = db.Sessions()
		mux := http.NewServeMux()
		mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
			sm.Put(r.Context(), "user", "alice")
		})
		mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, sm.GetString(r.Context(), "user"))
		})
		h := sm.LoadAndSave(mux)

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/put", nil))
		cookies := rec.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("got %d cookies, want the session cookie", len(cookies))
		}
		req := httptest.NewRequest(http.MethodGet, "/get", nil)
		req.AddCookie(cookies[0])
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Body.String(); got != "alice" {
			t.Fatalf("session value = %q, want alice", got)
		}
		if _, found, err := db.Sessions().FindCtx(ctx, cookies[0].Value); err != nil || !found {
			t.Fatalf("session not in the store: found=%v err=%v", found, err)
		}
	})
}

func assertLiveTokens(t *testing.T, s store.BrowserSessions, want ...string) {
	t.Helper()
	all, err := s.AllCtx(context.Background())
	if err != nil {
		t.Fatalf("AllCtx: %v", err)
	}
	got := slices.Sorted(maps.Keys(all))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("live sessions = %v, want %v", got, want)
	}
}
