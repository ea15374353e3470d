package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOperationsValidateRules(t *testing.T) {
	redis := func(mut func(*SessionRedis)) func(*Config) {
		return func(c *Config) {
			c.Session.Store = SessionStoreRedis
			mut(&c.Session.Redis)
		}
	}
	tests := []struct {
		name     string
		mutate   func(*Config)
		wantPath string // "" = valid
		wantMsg  string
	}{
		{"defaults", func(*Config) {}, "", ""},
		{"redis with defaults", redis(func(*SessionRedis) {}), "", ""},
		{"redis with auth and tls", redis(func(r *SessionRedis) {
			r.Address, r.Username, r.Password, r.TLS, r.DB = "redis.example.ac.jp:6380", "idp", SecretValue("pw"), true, 3
		}), "", ""},
		{"redis settings ignored for the store", func(c *Config) { c.Session.Redis.Address = "" }, "", ""},
		{"unknown session store", func(c *Config) { c.Session.Store = "memcached" }, "session.store", "must be one of store, redis"},
		{"empty session store", func(c *Config) { c.Session.Store = "" }, "session.store", "must be one of"},
		{"redis address missing", redis(func(r *SessionRedis) { r.Address = "" }), "session.redis.address", "required"},
		{"redis address without port", redis(func(r *SessionRedis) { r.Address = "redis.example.ac.jp" }), "session.redis.address", "host:port"},
		{"redis address bad port", redis(func(r *SessionRedis) { r.Address = "redis:99999" }), "session.redis.address", "host:port"},
		{"redis db out of range", redis(func(r *SessionRedis) { r.DB = 16 }), "session.redis.db", "between 0 and 15"},
		{"redis prefix with pattern", redis(func(r *SessionRedis) { r.KeyPrefix = "idp*" }), "session.redis.key_prefix", "pattern"},
		{"redis timeout zero", redis(func(r *SessionRedis) { r.Timeout = 0 }), "session.redis.timeout", "greater than 0"},
		{"redis password from a missing variable", redis(func(r *SessionRedis) { r.Password = SecretFromEnv("IDP_TEST_UNSET_REDIS_PW") }),
			"session.redis.password", "not set"},
		{"metrics listener", func(c *Config) { c.Metrics.Listen = "10.0.0.5:9100" }, "", ""},
		{"metrics listener on every interface", func(c *Config) { c.Metrics.Listen = ":9100" }, "", ""},
		{"metrics disabled", func(c *Config) { c.Metrics.Enabled = false }, "", ""},
		{"metrics listener without port", func(c *Config) { c.Metrics.Listen = "10.0.0.5" }, "metrics.listen", "host:port"},
		{"metrics bad network", func(c *Config) { c.Metrics.AllowedNetworks = []string{"10.0.0.0/8", "campus"} },
			"metrics.allowed_networks[1]", "CIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantPath == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			fe := findFieldError(t, err, tt.wantPath)
			if fe == nil {
				t.Fatalf("no error at %s; got %v", tt.wantPath, err)
			}
			if !strings.Contains(fe.Msg, tt.wantMsg) {
				t.Errorf("%s: %q does not mention %q", tt.wantPath, fe.Msg, tt.wantMsg)
			}
			if n := len(fieldErrors(t, err)); n != 1 {
				t.Errorf("%d errors, want 1: %v", n, err)
			}
		})
	}
}

func TestParseOperationsSections(t *testing.T) {
	t.Setenv("IDP_TEST_REDIS_PW", "redis-secret")
	cfg, err := Parse([]byte(requiredYAML + `
session:
  store: redis
  redis:
    address: "redis.example.ac.jp:6379"
    password: {env: IDP_TEST_REDIS_PW}
    db: 2
    key_prefix: "campus-idp:"
    timeout: 1s
metrics:
  listen: "127.0.0.1:9100"
  allowed_networks: ["10.1.0.0/16"]
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r := cfg.Session.Redis
	if cfg.Session.Store != SessionStoreRedis || r.Address != "redis.example.ac.jp:6379" || r.Password.Value() != "redis-secret" ||
		r.DB != 2 || r.KeyPrefix != "campus-idp:" || r.Timeout != time.Second || r.TLS {
		t.Errorf("session = %+v", cfg.Session)
	}
	want := Metrics{Enabled: true, Listen: "127.0.0.1:9100", AllowedNetworks: []string{"10.1.0.0/16"}}
	if !reflect.DeepEqual(cfg.Metrics, want) {
		t.Errorf("metrics = %+v, want %+v", cfg.Metrics, want)
	}
	if got := cfg.Metrics.AllowedPrefixes(); len(got) != 1 || got[0] != netip.MustParsePrefix("10.1.0.0/16") {
		t.Errorf("AllowedPrefixes = %v", got)
	}
	if _, err := Parse([]byte(requiredYAML + "session:\n  redis:\n    adress: x\n")); findFieldError(t, err, "session.redis.adress") == nil {
		t.Errorf("misspelt key accepted: %v", err)
	}
}
