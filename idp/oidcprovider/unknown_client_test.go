package oidcprovider_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
)

// TestUnknownClientIsInvalidClient: a token request naming a client that is
// not registered is invalid_client (401), whatever the grant; the answer
// never repeats what the caller sent, and the refusal is no ERROR line.
func TestUnknownClientIsInvalidClient(t *testing.T) {
	e, web, tok := offlineLogin(t)
	const probe = "evil<script>client"
	tests := []struct {
		name  string
		form  url.Values
		basic bool
	}{
		{"refresh, client_id in the form", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {probe}}, false},
		{"refresh, client in basic auth", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, true},
		{"refresh, no client at all", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, false},
		{"code", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {probe}}, false},
		{"client credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {probe}, "client_secret": {"s"}}, false},
	}
	// op logs its refusals through slog's default logger.
	var opLog testenv.SyncBuffer
	defaultLogger := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&opLog, nil)))
	t.Cleanup(func() { slog.SetDefault(defaultLogger) })
	before := strings.Count(e.logs.String(), "level=ERROR")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader(tt.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic {
				req.SetBasicAuth(url.QueryEscape(probe), "secret")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := resp.Body.Read(buf)
				body.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body.String(), `"error":"invalid_client"`) {
				t.Fatalf("token request by an unknown client = %d %s, want 401 invalid_client", resp.StatusCode, body.String())
			}
			if strings.Contains(body.String(), "evil") {
				t.Errorf("the answer repeats the caller's input: %s", body.String())
			}
		})
	}
	if after := strings.Count(e.logs.String(), "level=ERROR"); after != before || strings.Contains(opLog.String(), "level=ERROR") {
		t.Errorf("unknown clients were logged as errors:\n%s\n%s", e.logs.String(), opLog.String())
	}
	// The registered client still refreshes.
	if _, err := web.refresh(tok.RefreshToken); err != nil {
		t.Fatalf("refresh by the registered client: %v", err)
	}
}

// TestTokenEndpointOutageIs503: a code redeemed while the store cannot be
// read is an outage, answered 503 with Retry-After (the relying party may
// try again), not a 500 server error; once the store is back the same code
// is redeemed.
func TestTokenEndpointOutageIs503(t *testing.T) {
	e := newEnv(t)
	web := e.rp("web")
	b := e.browser()
	f := web.start()
	p := b.Follow(b.Get(f.url))
	if hasForm(p, "/login") {
		p = b.password(p, testldap.Alice)
	}
	code := web.codeFrom(p, f)

	e.storeDown.Store(true)
	req, err := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {web.redirect}, "code_verifier": {f.verifier},
	}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web", webSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("token request during a store outage = %d (Retry-After %q), want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	e.storeDown.Store(false)
	web.mustExchange(code, f)
}

// TestTokenOutagesAre503: a refresh, an introspection and a revocation
// that meet a store outage are answered 503 with Retry-After (op itself
// would say 500), counted as unavailable; once the store is back the same
// refresh token works: the outage used nothing up.
func TestTokenOutagesAre503(t *testing.T) {
	e, web, tok := offlineLogin(t)
	post := func(path string, form url.Values) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("web", webSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	e.storeDown.Store(true)
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}},
		{"/oauth/introspect", url.Values{"token": {tok.AccessToken}}},
		{"/oauth/revoke", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}},
	} {
		resp := post(c.path, c.form)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s during a store outage = %d (Retry-After %q), want 503 with Retry-After",
				c.path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	rec := httptest.NewRecorder()
	e.metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `idp_request_failures_total{class="unavailable"} 3`) {
		t.Errorf("outages not counted as unavailable:\n%s", grepLines(rec.Body.String(), "idp_request_failures_total"))
	}
	e.storeDown.Store(false)
	if _, err := web.refresh(tok.RefreshToken); err != nil {
		t.Fatalf("refresh after the outage: %v", err)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
