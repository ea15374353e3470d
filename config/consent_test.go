package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestConsentSettings: consent modes, terms, logos and optional scopes are
// checked where they are set; a bad value names its key.
func TestConsentSettings(t *testing.T) {
	withWebClient := func(f func(*OIDCClient)) func(*Config) {
		return func(c *Config) {
			cl := validOIDCClient()
			f(&cl)
			c.OIDC.Clients = []OIDCClient{cl}
		}
	}
	tests := []struct {
		name     string
		mutate   func(*Config)
		wantPath string
		wantMsg  string
	}{
		{"defaults", func(*Config) {}, "", ""},
		{"remember_for zero", func(c *Config) { c.Consent.RememberFor = 0 }, "consent.remember_for", "greater than 0"},
		{"remember_for too long", func(c *Config) { c.Consent.RememberFor = 6 * 366 * 24 * time.Hour }, "consent.remember_for", "at most"},
		{"terms in one language", func(c *Config) { c.Consent.TermsOfUse = Localized{EN: "Terms"} }, "consent.terms_of_use.ja", "required"},
		{"terms too long", func(c *Config) {
			c.Consent.TermsOfUse = Localized{JA: strings.Repeat("あ", 3000), EN: "Terms"}
		}, "consent.terms_of_use", "at most 8000"},
		{"client consent once", withWebClient(func(cl *OIDCClient) {
			cl.Consent, cl.OptionalScopes, cl.LogoURI = ConsentOnce, []string{"email"}, "https://portal.example.ac.jp/logo.png"
		}), "", ""},
		{"client consent unknown", withWebClient(func(cl *OIDCClient) { cl.Consent = "sometimes" }), "oidc.clients[0].consent", "none, once, always"},
		{"client optional scope not allowed", withWebClient(func(cl *OIDCClient) { cl.OptionalScopes = []string{"groups"} }),
			"oidc.clients[0].optional_scopes[0]", "not in the client's scopes"},
		{"client logo over http", withWebClient(func(cl *OIDCClient) { cl.LogoURI = "http://portal.example.ac.jp/logo.png" }),
			"oidc.clients[0].logo_uri", "https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.wantPath == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			paths := errorPaths(t, err)
			if !slices.Contains(paths, tt.wantPath) {
				t.Fatalf("paths = %q, want %q\n%v", paths, tt.wantPath, err)
			}
			if fe := findFieldError(t, err, tt.wantPath); !strings.Contains(fe.Msg, tt.wantMsg) {
				t.Errorf("message %q lacks %q", fe.Msg, tt.wantMsg)
			}
		})
	}
	var sp SAMLServiceProvider
	if sp.ConsentModeOrDefault(true) != ConsentOnce || sp.ConsentModeOrDefault(false) != ConsentNone {
		t.Error("SP defaults: once from a federation, none with own metadata")
	}
	sp.Consent = ConsentAlways
	if sp.ConsentModeOrDefault(true) != ConsentAlways {
		t.Error("an SP's own consent setting is ignored")
	}
	if (OIDCClient{}).ConsentModeOrDefault() != ConsentNone {
		t.Error("client default is not none")
	}
}
