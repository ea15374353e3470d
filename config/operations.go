package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Where browser sessions are kept (session.store).
const (
	// SessionStoreDB keeps sessions in the store (SQLite or PostgreSQL).
	SessionStoreDB = "store"
	// SessionStoreRedis keeps sessions in Redis (session.redis).
	SessionStoreRedis = "redis"
)

// SessionRedis is the Redis server that holds browser sessions when
// session.store is "redis". Every instance must use the same server.
type SessionRedis struct {
	// Address is host:port.
	Address  string `yaml:"address"`
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	DB       int    `yaml:"db"`
	// TLS connects with TLS, verifying the server against the system roots.
	TLS bool `yaml:"tls"`
	// KeyPrefix starts every key the IdP writes, so one Redis can serve
	// several IdPs (for example staging beside production).
	KeyPrefix string `yaml:"key_prefix"`
	// Timeout bounds connecting and each command.
	Timeout time.Duration `yaml:"timeout"`
}

func defaultSessionRedis() SessionRedis {
	return SessionRedis{
		Address:   "127.0.0.1:6379",
		KeyPrefix: "idp:",
		Timeout:   3 * time.Second,
	}
}

// validateBackend checks session.store and, when it is redis, session.redis.
func (s Session) validateBackend(v *validator, p string) {
	if !v.oneOf(p+".store", s.Store, SessionStoreDB, SessionStoreRedis) || s.Store != SessionStoreRedis {
		return
	}
	r, rp := s.Redis, p+".redis"
	if v.required(rp+".address", r.Address) {
		if host, port, err := net.SplitHostPort(r.Address); err != nil || host == "" || !validPort(port) {
			v.add(rp+".address", "must be host:port, such as 127.0.0.1:6379 (got %q)", r.Address)
		}
	}
	v.secret(rp+".password", r.Password, false)
	v.intRange(rp+".db", r.DB, 0, 15)
	if strings.ContainsAny(r.KeyPrefix, " \t\r\n*?[]") {
		v.add(rp+".key_prefix", "must not contain spaces or the Redis pattern characters *?[] (got %q)", r.KeyPrefix)
	}
	v.duration(rp+".timeout", r.Timeout, time.Minute)
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}

// Metrics is the Prometheus endpoint /metrics.
type Metrics struct {
	Enabled bool `yaml:"enabled"`
	// Listen, when set, is a separate listener (host:port) for /metrics,
	// /healthz and /readyz, usually on an internal interface; /metrics is
	// then not served on server.listen at all.
	Listen string `yaml:"listen"`
	// AllowedNetworks are CIDRs whose clients may read /metrics on
	// server.listen (the client address as judged with
	// server.trusted_proxies). Unused when Listen is set.
	AllowedNetworks []string `yaml:"allowed_networks"`
}

func defaultMetrics() Metrics {
	return Metrics{
		Enabled:         true,
		AllowedNetworks: []string{"127.0.0.0/8", "::1/128"},
	}
}

// AllowedPrefixes returns the parsed allowed_networks; entries that do not
// parse are skipped (Validate reports them).
func (m Metrics) AllowedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, cidr := range m.AllowedNetworks {
		if p, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

func (m Metrics) validate(v *validator, p string) {
	if m.Listen != "" {
		if _, port, err := net.SplitHostPort(m.Listen); err != nil || !validPort(port) {
			v.add(p+".listen", "must be host:port, such as 127.0.0.1:9100 (got %q)", m.Listen)
		}
	}
	for i, cidr := range m.AllowedNetworks {
		if _, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err != nil {
			v.add(fmt.Sprintf("%s.allowed_networks[%d]", p, i), "must be a CIDR such as 10.0.0.0/8 (got %q)", cidr)
		}
	}
}
