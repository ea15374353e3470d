package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestValidateLogout: the single-logout limits and the clients' logout
// URIs are checked, with the key path of each problem.
func TestValidateLogout(t *testing.T) {
	client := func(mod func(*OIDCClient)) func(*Config) {
		return func(c *Config) {
			cl := OIDCClient{ID: "rp", Secret: SecretValue(strings.Repeat("s", 32)),
				RedirectURIs: []string{"https://rp.example.ac.jp/cb"}}
			mod(&cl)
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
		{"max services zero", func(c *Config) { c.Logout.MaxServices = 0 }, "logout.max_services", "between 1 and 500"},
		{"max services huge", func(c *Config) { c.Logout.MaxServices = 100000 }, "logout.max_services", "between 1 and 500"},
		{"front channel wait too long", func(c *Config) { c.Logout.FrontChannelWait = time.Hour }, "logout.front_channel_wait", "at most 1m"},
		{"back channel timeout zero", func(c *Config) { c.Logout.Backchannel.Timeout = 0 }, "logout.backchannel.timeout", "greater than 0"},
		{"back channel timeout too long", func(c *Config) { c.Logout.Backchannel.Timeout = time.Minute }, "logout.backchannel.timeout", "at most 30s"},
		{"back channel attempts", func(c *Config) { c.Logout.Backchannel.Attempts = 11 }, "logout.backchannel.attempts", "between 1 and 10"},
		{"back channel backoff", func(c *Config) { c.Logout.Backchannel.Backoff = time.Hour }, "logout.backchannel.backoff", "at most 5m"},
		{"backchannel uri ok", client(func(c *OIDCClient) { c.BackchannelLogoutURI = "https://rp.example.ac.jp/bc" }), "", ""},
		{"backchannel uri loopback http ok", client(func(c *OIDCClient) { c.BackchannelLogoutURI = "http://127.0.0.1:9000/bc" }), "", ""},
		{"backchannel uri http", client(func(c *OIDCClient) { c.BackchannelLogoutURI = "http://rp.example.ac.jp/bc" }),
			"oidc.clients[0].backchannel_logout_uri", "https"},
		{"backchannel uri relative", client(func(c *OIDCClient) { c.BackchannelLogoutURI = "/bc" }),
			"oidc.clients[0].backchannel_logout_uri", "absolute"},
		{"frontchannel uri fragment", client(func(c *OIDCClient) { c.FrontchannelLogoutURI = "https://rp.example.ac.jp/fc#x" }),
			"oidc.clients[0].frontchannel_logout_uri", "fragment"},
		{"frontchannel uri other scheme", client(func(c *OIDCClient) { c.FrontchannelLogoutURI = "javascript://rp.example.ac.jp/x" }),
			"oidc.clients[0].frontchannel_logout_uri", "https"},
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
			if !slices.Equal(paths, []string{tt.wantPath}) {
				t.Fatalf("paths = %q, want only %q\n%v", paths, tt.wantPath, err)
			}
			if fe := findFieldError(t, err, tt.wantPath); !strings.Contains(fe.Msg, tt.wantMsg) {
				t.Errorf("message %q lacks %q", fe.Msg, tt.wantMsg)
			}
		})
	}
}
