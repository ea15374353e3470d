package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/ldapstore"
)

func TestWithOIDCAttributes(t *testing.T) {
	claims := []config.OIDCClaim{
		{Name: "email", Source: config.ClaimSourceMail, Scope: "email"},
		{Name: "eppn", Source: "attribute:eduPersonPrincipalName", Scope: "eppn"},
		{Name: "aff", Source: "attribute:employeeType", Scope: "aff"},
	}
	tests := []struct {
		name    string
		extra   []string
		subject string
		want    []string
	}{
		{"adds claim attributes", nil, "", []string{"eduPersonPrincipalName", "employeeType"}},
		{"adds the subject attribute", []string{"cn"}, "entryUUID", []string{"cn", "entryUUID", "eduPersonPrincipalName", "employeeType"}},
		{"keeps what is listed, whatever its case", []string{"EmployeeType"}, "", []string{"EmployeeType", "eduPersonPrincipalName"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc := ldapstore.Config{Attributes: ldapstore.Attributes{Extra: tt.extra}}
			got := withOIDCAttributes(lc, config.OIDC{Claims: claims, SubjectAttribute: tt.subject}).Attributes.Extra
			if !slices.Equal(got, tt.want) {
				t.Fatalf("extra = %q, want %q", got, tt.want)
			}
			if len(tt.extra) > 0 && &lc.Attributes.Extra[0] == &got[0] {
				t.Fatal("the caller's list was modified in place")
			}
		})
	}
}

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
