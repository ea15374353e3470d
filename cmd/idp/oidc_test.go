package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
)

var demoSecretRe = regexp.MustCompile(`client_id (\S+)\s+client_secret (\S+)`)

// idp dev registers a demo relying party and prints how to use it.
func TestDevRegistersDemoOIDCClient(t *testing.T) {
	dev := startDev(t)
	base, stdout := dev.base, &dev.stdout
	defer dev.stop(t)

	out := stdout.String()
	m := demoSecretRe.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "OIDC issuer:  "+base) {
		t.Fatalf("idp dev does not print the issuer and the demo client:\n%s", out)
	}
	clientID, secret := m[1], m[2]
	provider, err := gooidc.NewProvider(context.Background(), base)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	// The printed secret authenticates the client: a made-up code is then
	// refused as a grant, not as a client.
	tests := []struct {
		secret string
		want   string
	}{
		{secret, "invalid_grant"},
		{secret + "x", "invalid_client"},
	}
	for _, tt := range tests {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {"made-up"},
			"redirect_uri": {"http://127.0.0.1:5555/callback"}, "code_verifier": {strings.Repeat("v", 43)}}
		req, _ := http.NewRequest(http.MethodPost, provider.Endpoint().TokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, url.QueryEscape(tt.secret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if body["error"] != tt.want {
			t.Errorf("token request with the %s secret: %d %v, want %s", map[bool]string{true: "printed", false: "wrong"}[tt.secret == secret],
				resp.StatusCode, body, tt.want)
		}
	}
}
