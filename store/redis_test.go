package store_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/campusidp/campusidp/internal/testredis"
	"github.com/campusidp/campusidp/store"
)

func openRedis(t *testing.T) (*store.RedisSessions, string) {
	t.Helper()
	prefix := testredis.Prefix(t)
	s, err := store.OpenRedisSessions(context.Background(), store.RedisConfig{
		Address: testredis.Addr(), KeyPrefix: prefix, SessionLifetime: time.Hour,
	}, nil)
	if err != nil {
		t.Fatalf("OpenRedisSessions: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, prefix
}

func TestRedisSessionsStore(t *testing.T) {
	s, prefix := openRedis(t)
	now := time.Now()
	tests := []struct {
		name      string
		token     string
		data      string
		expiry    time.Time
		wantFound bool
	}{
		{"live", "live", "data-1", now.Add(time.Hour), true},
		{"binary", "bin", "\x00\xff\x00", now.Add(time.Hour), true},
		{"already expired", "gone", "data-2", now.Add(-time.Second), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Commit(tc.token, []byte(tc.data), tc.expiry); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			got, found, err := s.Find(tc.token)
			if err != nil || found != tc.wantFound || (found && string(got) != tc.data) {
				t.Fatalf("Find = %q, %v, %v; want %q, %v", got, found, err, tc.data, tc.wantFound)
			}
		})
	}
	all, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(all)); !slices.Equal(got, []string{"bin", "live"}) {
		t.Fatalf("All tokens = %v, want [bin live]", got)
	}
	if err := s.Delete("live"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Find("live"); err != nil || found {
		t.Fatalf("Find after Delete: found=%v err=%v", found, err)
	}
	for _, k := range testredis.Keys(t, prefix) {
		if !strings.HasPrefix(k, prefix+"session:") {
			t.Errorf("unexpected key %q", k)
		}
	}
}

func TestRedisSessionsEndUserSessions(t *testing.T) {
	ctx := context.Background()
	s, prefix := openRedis(t)
	later := time.Now().Add(time.Hour)
	for _, tok := range []string{"a1", "a2", "b1"} {
		if err := s.Commit(tok, []byte("x"), later); err != nil {
			t.Fatal(err)
		}
	}
	binds := []struct{ token, user string }{{"a1", "alice"}, {"a2", "alice"}, {"a3-never-committed", "alice"}, {"b1", "bob"}}
	for _, b := range binds {
		if err := s.BindSessionUser(ctx, b.token, b.user); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name      string
		user      string
		except    string
		wantEnded int
		wantLive  []string
	}{
		{"all but the current one", "alice", "a1", 1, []string{"a1", "b1"}},
		{"again: nothing left but the current", "alice", "a1", 0, []string{"a1", "b1"}},
		{"all of them", "alice", "", 1, []string{"b1"}},
		{"unknown user", "nobody", "", 0, []string{"b1"}},
	}
	for _, st := range steps {
		n, err := s.DeleteUserSessions(ctx, st.user, st.except)
		if err != nil || n != st.wantEnded {
			t.Fatalf("%s: DeleteUserSessions = %d, %v; want %d", st.name, n, err, st.wantEnded)
		}
		all, err := s.All()
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(maps.Keys(all)); !slices.Equal(got, st.wantLive) {
			t.Fatalf("%s: live sessions %v, want %v", st.name, got, st.wantLive)
		}
	}
	// The user index expires by itself: its TTL is the session lifetime.
	ttl := redisTTL(t, prefix+"user-sessions:bob")
	if ttl <= 0 || ttl > time.Hour {
		t.Fatalf("TTL of bob's session list = %v, want (0, 1h]", ttl)
	}
	if err := s.BindSessionUser(ctx, "", "alice"); err == nil {
		t.Fatal("BindSessionUser with an empty token succeeded")
	}
}

// TestRedisSessionsWithSCS: a session written through scs on one instance is
// read on another instance sharing the Redis server.
func TestRedisSessionsWithSCS(t *testing.T) {
	s1, prefix := openRedis(t)
	s2, err := store.OpenRedisSessions(context.Background(), store.RedisConfig{Address: testredis.Addr(), KeyPrefix: prefix}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	handler := func(st scs.Store) http.Handler {
		sm := scs.New()
		sm.Store = st
		sm.HashTokenInStore = true
		mux := http.NewServeMux()
		mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) { sm.Put(r.Context(), "user", "alice") })
		mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, sm.GetString(r.Context(), "user")) })
		return sm.LoadAndSave(mux)
	}
	rec := httptest.NewRecorder()
	handler(s1).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/put", nil))
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("got %d cookies, want the session cookie", len(cookies))
	}
	req := httptest.NewRequest(http.MethodGet, "/get", nil)
	req.AddCookie(cookies[0])
	rec = httptest.NewRecorder()
	handler(s2).ServeHTTP(rec, req)
	if got := rec.Body.String(); got != "alice" {
		t.Fatalf("session value on the second instance = %q, want alice", got)
	}
	// The token is hashed in the store: the cookie value is no key.
	for _, k := range testredis.Keys(t, prefix) {
		if strings.Contains(k, cookies[0].Value) {
			t.Fatalf("key %q holds the raw session token", k)
		}
	}
}

func TestOpenRedisSessionsErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  store.RedisConfig
		want string
	}{
		{"empty address", store.RedisConfig{}, "empty address"},
		{"nothing listening", store.RedisConfig{Address: "127.0.0.1:1", Timeout: time.Second}, "127.0.0.1:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.OpenRedisSessions(context.Background(), tc.cfg, nil)
			if err == nil {
				s.Close()
				t.Fatal("OpenRedisSessions succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func redisTTL(t *testing.T, key string) time.Duration {
	t.Helper()
	c, err := redis.Dial("tcp", testredis.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ms, err := redis.Int64(c.Do("PTTL", key))
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(ms) * time.Millisecond
}
