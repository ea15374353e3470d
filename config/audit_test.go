package config

import (
	"strings"
	"testing"
	"time"
)

// TestAuditRetentionAndShutdownDelay: the defaults, and the bounds
// Validate enforces with the key path.
func TestAuditRetentionAndShutdownDelay(t *testing.T) {
	d := Default()
	if d.Audit.Retention != 400*24*time.Hour || d.Server.ShutdownDelay != 5*time.Second {
		t.Fatalf("defaults: audit.retention %s, server.shutdown_delay %s", d.Audit.Retention, d.Server.ShutdownDelay)
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantKey string
	}{
		{"retention kept for ever", func(c *Config) { c.Audit.Retention = 0 }, ""},
		{"retention too short", func(c *Config) { c.Audit.Retention = time.Hour }, "audit.retention"},
		{"no shutdown delay", func(c *Config) { c.Server.ShutdownDelay = 0 }, ""},
		{"negative shutdown delay", func(c *Config) { c.Server.ShutdownDelay = -time.Second }, "server.shutdown_delay"},
		{"shutdown delay too long", func(c *Config) { c.Server.ShutdownDelay = time.Hour }, "server.shutdown_delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			got := strings.Join(Describe(c.Validate()), "\n")
			if tt.wantKey == "" {
				if strings.Contains(got, "audit.") || strings.Contains(got, "shutdown_delay") {
					t.Fatalf("unexpected problem: %s", got)
				}
				return
			}
			if !strings.Contains(got, tt.wantKey) {
				t.Fatalf("problems %q do not name %s", got, tt.wantKey)
			}
		})
	}
}
