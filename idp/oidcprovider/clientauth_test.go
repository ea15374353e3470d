package oidcprovider_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/store"
)

// postClient sends a form to an endpoint with the client's credentials in
// HTTP Basic and returns the status, the Retry-After header and the body.
func (e *env) postClient(path, clientID, secret string, form url.Values) (int, string, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(body)
}

// limitTrips reads idp_limit_trips_total for a limit and key type.
func (e *env) limitTrips(limit, key string) string {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	prefix := `idp_limit_trips_total{key="` + key + `",limit="` + limit + `"} `
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return ""
}

// TestTokenEndpointThrottlesWrongSecrets: the N+1th wrong secret of a
// client gets 429 with Retry-After, before its secret is checked; the
// trip and the refusals are audited and counted; the window ends it.
func TestTokenEndpointThrottlesWrongSecrets(t *testing.T) {
	const n = 3
	e := newEnv(t, func(c *config.Config) {
		c.OIDC.ClientAuthBudget.PerClient = config.Budget{Limit: n, Window: 10 * time.Minute}
	})
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"groups"}}
	for i := 0; i < n; i++ {
		if status, _, body := e.postClient("/oauth/token", "machine", "wrong-secret", form); status != http.StatusUnauthorized {
			t.Fatalf("wrong secret %d: %d %s, want 401", i+1, status, body)
		}
	}
	status, retry, body := e.postClient("/oauth/token", "machine", "wrong-secret", form)
	if status != http.StatusTooManyRequests {
		t.Fatalf("wrong secret %d: %d %s, want 429", n+1, status, body)
	}
	if secs, err := strconv.Atoi(retry); err != nil || secs < 1 || secs > 600 {
		t.Errorf("Retry-After %q, want the seconds left in the window", retry)
	}
	// The relying party itself keeps working: a secret already known to be
	// right is not a guess, spends nothing and costs no slow hash.
	if status, _, body := e.postClient("/oauth/token", "machine", robotSecret, form); status != http.StatusOK {
		t.Errorf("right secret during the lock: %d %s, want 200", status, body)
	}
	// Another wrong one is still refused before any check.
	if status, _, _ := e.postClient("/oauth/token", "machine", "wrong-again", form); status != http.StatusTooManyRequests {
		t.Errorf("wrong secret after the right one: %d, want 429", status)
	}
	events, err := e.db.ListAudit(context.Background(), store.AuditFilter{Type: "oauth_client_auth_locked"})
	if err != nil || len(events) != 1 || events[0].Detail["client_id"] != "machine" || events[0].Detail["budget"] != "oauth_client" {
		t.Errorf("lock audit: %+v (%v)", events, err)
	}
	if events, _ := e.db.ListAudit(context.Background(), store.AuditFilter{Type: "oauth_client_auth_failed"}); len(events) != n {
		t.Errorf("failed authentications audited: %d, want %d", len(events), n)
	}
	if got := e.limitTrips("client_secret", "oauth_client"); got != "2" {
		t.Errorf("idp_limit_trips_total{client_secret,oauth_client} = %q, want 2", got)
	}
	e.clock.Advance(11 * time.Minute)
	if status, _, body := e.postClient("/oauth/token", "machine", robotSecret, form); status != http.StatusOK {
		t.Fatalf("after the window: %d %s", status, body)
	}
}

// TestIntrospectionAndRevocationThrottlePerAddress: wrong secrets for
// different clients from one address share the address's budget, and a
// correct authentication does not spend it.
func TestIntrospectionAndRevocationThrottlePerAddress(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.OIDC.ClientAuthBudget.PerIP = config.Budget{Limit: 2, Window: 10 * time.Minute}
	})
	form := url.Values{"token": {"not-a-token"}}
	for i := 0; i < 5; i++ {
		if status, _, body := e.postClient("/oauth/introspect", "web", webSecret, form); status != http.StatusOK {
			t.Fatalf("introspection with the right secret: %d %s", status, body)
		}
	}
	if status, _, _ := e.postClient("/oauth/introspect", "web", "wrong", form); status != http.StatusUnauthorized {
		t.Fatalf("first wrong secret: %d, want 401", status)
	}
	if status, _, _ := e.postClient("/oauth/revoke", "jwt", "wrong", form); status != http.StatusUnauthorized {
		t.Fatalf("second wrong secret: %d, want 401", status)
	}
	for _, path := range []string{"/oauth/revoke", "/oauth/introspect", "/oauth/token"} {
		status, retry, _ := e.postClient(path, "pairwise", "wrong", form)
		if status != http.StatusTooManyRequests || retry == "" {
			t.Errorf("%s past the address budget: %d (Retry-After %q), want 429", path, status, retry)
		}
	}
	if events, _ := e.db.ListAudit(context.Background(), store.AuditFilter{Type: "oauth_client_auth_throttled"}); len(events) != 3 ||
		events[0].Detail["budget"] != "ip" {
		t.Errorf("throttled requests audited: %+v", events)
	}
}

// TestKnownSecretSpendsNoBudget: a hashed secret is known only once it was
// accepted; before that the right secret waits out a lock like any guess
// (the budget refuses before the slow hash), after it the relying party
// passes through a lock that wrong secrets keep in place.
func TestKnownSecretSpendsNoBudget(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.OIDC.ClientAuthBudget.PerClient = config.Budget{Limit: 1, Window: 10 * time.Minute}
	})
	// An unknown code: once the client is authenticated the answer is 400
	// invalid_grant, a wrong secret 401, a lock 429.
	redeem := func(secret string) int {
		t.Helper()
		resp, err := http.PostForm(e.issuer+"/oauth/token", url.Values{
			"grant_type": {"authorization_code"}, "code": {"unknown"}, "redirect_uri": {rpBase + "/post/cb"},
			"client_id": {"post"}, "client_secret": {secret}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	steps := []struct {
		secret string
		want   int
	}{
		{"wrong", http.StatusUnauthorized},
		{postSecret, http.StatusTooManyRequests}, // not known yet: the lock holds
	}
	for i, s := range steps {
		if got := redeem(s.secret); got != s.want {
			t.Fatalf("step %d: %d, want %d", i, got, s.want)
		}
	}
	e.clock.Advance(11 * time.Minute)
	for i, s := range []struct {
		secret string
		want   int
	}{
		{postSecret, http.StatusBadRequest}, // accepted after bcrypt: known from now on
		{"wrong", http.StatusUnauthorized},
		{"wrong", http.StatusTooManyRequests},
		{postSecret, http.StatusBadRequest},
		{postSecret, http.StatusBadRequest},
	} {
		if got := redeem(s.secret); got != s.want {
			t.Errorf("after the window, step %d: %d, want %d", i, got, s.want)
		}
	}
}
