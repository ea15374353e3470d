package ldapstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func validConfig() Config {
	return Config{
		URLs:         []string{"ldap://127.0.0.1:1389"},
		BindDN:       "cn=svc,dc=example",
		BindPassword: "secret",
		UserBaseDN:   "ou=people,dc=example",
		UserFilter:   "(&(objectClass=inetOrgPerson)(uid={id}))",
	}
}

func TestUserFilterEscapesInput(t *testing.T) {
	const tmpl = "(&(objectClass=inetOrgPerson)(uid={id}))"
	tests := []struct {
		id   string
		want string
	}{
		{"alice", `(&(objectClass=inetOrgPerson)(uid=alice))`},
		{"*)(uid=*", `(&(objectClass=inetOrgPerson)(uid=\2a\29\28uid=\2a))`},
		{"*", `(&(objectClass=inetOrgPerson)(uid=\2a))`},
		{"a)(|(uid=*", `(&(objectClass=inetOrgPerson)(uid=a\29\28|\28uid=\2a))`},
		{"alice)(uid=*", `(&(objectClass=inetOrgPerson)(uid=alice\29\28uid=\2a))`},
		{"user,ou=admins", `(&(objectClass=inetOrgPerson)(uid=user,ou=admins))`},
		{"ali*", `(&(objectClass=inetOrgPerson)(uid=ali\2a))`},
		{`back\slash`, `(&(objectClass=inetOrgPerson)(uid=back\5cslash))`},
		{"alice\x00", `(&(objectClass=inetOrgPerson)(uid=alice\00))`},
		{"{id}", `(&(objectClass=inetOrgPerson)(uid={id}))`},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got := userFilter(tmpl, tt.id)
			if got != tt.want {
				t.Fatalf("userFilter(%q) = %s, want %s", tt.id, got, tt.want)
			}
			// Whatever the input, the compiled filter is the template's AND
			// with one equality whose value is the raw ID, byte for byte.
			packet, err := ldap.CompileFilter(got)
			if err != nil {
				t.Fatalf("compile %s: %v", got, err)
			}
			if packet.Tag != ldap.FilterAnd || len(packet.Children) != 2 {
				t.Fatalf("filter structure changed: %s", got)
			}
			eq := packet.Children[1]
			if eq.Tag != ldap.FilterEqualityMatch || len(eq.Children) != 2 {
				t.Fatalf("uid clause is not an equality match: %s", got)
			}
			if attr := eq.Children[0].Data.String(); attr != "uid" {
				t.Fatalf("attribute = %q, want uid", attr)
			}
			if value := eq.Children[1].Data.String(); value != tt.id {
				t.Fatalf("assertion value = %q, want the raw ID %q", value, tt.id)
			}
		})
	}
}

func TestGroupFilterEscapesDN(t *testing.T) {
	got := groupFilter("(&(objectClass=groupOfNames)(member={dn}))", `uid=a*b\2c(x),ou=people`)
	want := `(&(objectClass=groupOfNames)(member=uid=a\2ab\5c2c\28x\29,ou=people))`
	if got != want {
		t.Fatalf("groupFilter = %s, want %s", got, want)
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"alice", true},
		{"ALICE", true},
		{"s1234567", true},
		{"山田", true},
		{"user,ou=admins", true}, // odd but harmless once escaped
		{"*)(uid=*", true},       // likewise: escaping, not rejection, defends the filter
		{"", false},
		{strings.Repeat("a", 256), true},
		{strings.Repeat("a", 257), false},
		{"alice\x00", false},
		{"ali\nce", false},
		{"alice\t", false},
		{"alice\x7f", false},
		{"alice\u0085", false}, // C1 control
		{"\xff\xfe", false},    // invalid UTF-8
	}
	for _, tt := range tests {
		if got := validID(tt.id); got != tt.want {
			t.Errorf("validID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestGroupNameFromDN(t *testing.T) {
	tests := []struct {
		dn     string
		want   string
		wantOK bool
	}{
		{"cn=students,ou=groups,dc=campus,dc=example", "students", true},
		{"CN=IdP Admins,OU=Groups,DC=campus", "IdP Admins", true},
		{`cn=a\2cb,ou=groups`, "a,b", true},
		{"", "", false},
		{"not a dn", "", false},
	}
	for _, tt := range tests {
		got, ok := groupNameFromDN(tt.dn)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("groupNameFromDN(%q) = %q, %v; want %q, %v", tt.dn, got, ok, tt.want, tt.wantOK)
		}
	}
	if got := sortedUnique([]string{"b", "a", "b", "c", "a"}); strings.Join(got, ",") != "a,b,c" {
		t.Errorf("sortedUnique = %v", got)
	}
}

func TestValidateDefaults(t *testing.T) {
	s, err := validate(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ID", s.Attributes.ID, "uid"},
		{"DisplayName", s.Attributes.DisplayName, "displayName"},
		{"DisplayNameJA", s.Attributes.DisplayNameJA, "displayName;lang-ja"},
		{"Mail", s.Attributes.Mail, "mail"},
		{"Groups.Mode", s.Groups.Mode, GroupsNone},
		{"Groups.Attribute", s.Groups.Attribute, "memberOf"},
		{"Groups.Filter", s.Groups.Filter, "(member={dn})"},
		{"Groups.NameAttribute", s.Groups.NameAttribute, "cn"},
		{"PoolSize", s.PoolSize, 8},
		{"DialTimeout", s.DialTimeout, 5 * time.Second},
		{"OperationTimeout", s.OperationTimeout, 5 * time.Second},
		{"IdleTimeout", s.IdleTimeout, 5 * time.Minute},
		{"address", s.servers[0].address, "127.0.0.1:1389"},
		{"plain ldap has no TLS", s.servers[0].tls == nil, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"no URL", func(c *Config) { c.URLs = nil }, "at least one URL"},
		{"bad scheme", func(c *Config) { c.URLs = []string{"http://x"} }, "scheme must be"},
		{"no host", func(c *Config) { c.URLs = []string{"ldap://"} }, "host is missing"},
		{"path in URL", func(c *Config) { c.URLs = []string{"ldap://x/dc=example"} }, "only scheme, host and port"},
		{"StartTLS with ldaps", func(c *Config) { c.StartTLS = true; c.URLs = []string{"ldaps://x"} }, "StartTLS cannot be combined"},
		{"bind DN without password", func(c *Config) { c.BindPassword = "" }, "BindPassword is required"},
		{"bad bind DN", func(c *Config) { c.BindDN = "no-equals" }, "BindDN"},
		{"no base", func(c *Config) { c.UserBaseDN = "" }, "UserBaseDN is required"},
		{"no filter", func(c *Config) { c.UserFilter = "" }, "UserFilter is required"},
		{"filter without {id}", func(c *Config) { c.UserFilter = "(uid=alice)" }, "exactly once"},
		{"filter with two {id}", func(c *Config) { c.UserFilter = "(|(uid={id})(mail={id}))" }, "exactly once"},
		{"broken filter", func(c *Config) { c.UserFilter = "(uid={id}" }, "not a valid LDAP filter"},
		{"broken disabled filter", func(c *Config) { c.DisabledFilter = "employeeType=disabled)" }, "DisabledFilter"},
		{"password attribute", func(c *Config) { c.Attributes.Extra = []string{"userPassword"} }, "must not be fetched"},
		{"bad attribute", func(c *Config) { c.Attributes.Mail = "mail address" }, "not a valid attribute description"},
		{"unknown group mode", func(c *Config) { c.Groups.Mode = "nested" }, "Groups.Mode"},
		{"search without base", func(c *Config) { c.Groups.Mode = GroupsSearch }, "Groups.BaseDN is required"},
		{"search filter without {dn}", func(c *Config) {
			c.Groups = Groups{Mode: GroupsSearch, BaseDN: "ou=groups,dc=example", Filter: "(member=x)"}
		}, "must contain {dn}"},
		{"negative pool", func(c *Config) { c.PoolSize = -1 }, "PoolSize"},
		{"negative timeout", func(c *Config) { c.OperationTimeout = -time.Second }, "OperationTimeout"},
		{"missing CA file", func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "CAFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.modify(&cfg)
			_, err := New(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}

	// Every problem is reported at once.
	cfg := validConfig()
	cfg.UserBaseDN, cfg.UserFilter = "", ""
	_, err := New(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "UserBaseDN") || !strings.Contains(err.Error(), "UserFilter") {
		t.Fatalf("got %v, want both problems", err)
	}
}

// writeCA writes a self-signed CA certificate as PEM and returns its path.
func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unit CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLSConfig(t *testing.T) {
	caFile := writeCA(t)
	notPEM := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		urls       []string
		startTLS   bool
		caFile     string
		insecure   bool
		wantErr    string
		wantTLS    bool
		wantRoots  bool
		wantServer string
		wantPort   string
	}{
		{name: "ldaps with CA", urls: []string{"ldaps://ldap1.campus.example"}, caFile: caFile,
			wantTLS: true, wantRoots: true, wantServer: "ldap1.campus.example", wantPort: "636"},
		{name: "StartTLS with CA", urls: []string{"ldap://ldap1.campus.example:1389"}, startTLS: true, caFile: caFile,
			wantTLS: true, wantRoots: true, wantServer: "ldap1.campus.example", wantPort: "1389"},
		{name: "ldaps with system roots", urls: []string{"ldaps://10.0.0.1:1636"},
			wantTLS: true, wantServer: "10.0.0.1", wantPort: "1636"},
		{name: "insecure", urls: []string{"ldaps://x"}, insecure: true, wantTLS: true, wantServer: "x", wantPort: "636"},
		{name: "plain", urls: []string{"ldap://x"}, wantPort: "389"},
		{name: "missing CA file", urls: []string{"ldaps://x"}, caFile: "/nonexistent/ca.pem", wantErr: "CAFile: open /nonexistent/ca.pem"},
		{name: "CA file without PEM", urls: []string{"ldaps://x"}, caFile: notPEM, wantErr: "no PEM certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			cfg.URLs, cfg.StartTLS, cfg.CAFile, cfg.InsecureSkipVerify = tt.urls, tt.startTLS, tt.caFile, tt.insecure
			s, err := validate(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			srv := s.servers[0]
			if _, port, _ := net.SplitHostPort(srv.address); port != tt.wantPort {
				t.Errorf("port = %s, want %s", port, tt.wantPort)
			}
			if (srv.tls != nil) != tt.wantTLS {
				t.Fatalf("TLS config present = %v, want %v", srv.tls != nil, tt.wantTLS)
			}
			if srv.tls == nil {
				return
			}
			if srv.tls.ServerName != tt.wantServer {
				t.Errorf("ServerName = %q, want %q", srv.tls.ServerName, tt.wantServer)
			}
			if (srv.tls.RootCAs != nil) != tt.wantRoots {
				t.Errorf("RootCAs set = %v, want %v", srv.tls.RootCAs != nil, tt.wantRoots)
			}
			if srv.tls.InsecureSkipVerify != tt.insecure {
				t.Errorf("InsecureSkipVerify = %v", srv.tls.InsecureSkipVerify)
			}
			if srv.tls.MinVersion < 0x0303 {
				t.Errorf("MinVersion = %x, want at least TLS 1.2", srv.tls.MinVersion)
			}
		})
	}
}

func TestFailureReasonAndErrorKinds(t *testing.T) {
	cred := invalidCredentials(ReasonWrongPassword)
	wrapped := fmt.Errorf("login: %w", cred)
	outage := unavailable(errors.New("connection refused"))
	tests := []struct {
		name        string
		err         error
		wantCred    bool
		wantOutage  bool
		wantReason  string
		wantMessage string
	}{
		{"credential failure", cred, true, false, ReasonWrongPassword, "ldapstore: invalid credentials"},
		{"wrapped credential failure", wrapped, true, false, ReasonWrongPassword, "login: ldapstore: invalid credentials"},
		{"disabled looks the same", invalidCredentials(ReasonDisabled), true, false, ReasonDisabled, "ldapstore: invalid credentials"},
		{"outage", outage, false, true, "", "ldapstore: directory unavailable: connection refused"},
		{"plain sentinel", ErrInvalidCredentials, true, false, "", "ldapstore: invalid credentials"},
		{"nil", nil, false, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, ErrInvalidCredentials); got != tt.wantCred {
				t.Errorf("Is(ErrInvalidCredentials) = %v", got)
			}
			if got := errors.Is(tt.err, ErrDirectoryUnavailable); got != tt.wantOutage {
				t.Errorf("Is(ErrDirectoryUnavailable) = %v", got)
			}
			if got := FailureReason(tt.err); got != tt.wantReason {
				t.Errorf("FailureReason = %q, want %q", got, tt.wantReason)
			}
			if tt.err != nil && tt.err.Error() != tt.wantMessage {
				t.Errorf("message = %q, want %q", tt.err.Error(), tt.wantMessage)
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		wantRetryable bool
		wantBroken    bool
	}{
		{"network", ldap.NewError(ldap.ErrorNetwork, errors.New("reset")), true, true},
		{"server down", ldap.NewError(ldap.LDAPResultServerDown, errors.New("down")), true, true},
		{"client timeout", ldap.NewError(ldap.LDAPResultTimeout, errors.New("timeout")), true, true},
		{"busy", ldap.NewError(ldap.LDAPResultBusy, errors.New("busy")), true, false},
		{"unavailable", ldap.NewError(ldap.LDAPResultUnavailable, errors.New("unavailable")), true, false},
		{"invalid credentials", ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New("49")), false, false},
		{"no such object", ldap.NewError(ldap.LDAPResultNoSuchObject, errors.New("32")), false, false},
		{"size limit", ldap.NewError(ldap.LDAPResultSizeLimitExceeded, errors.New("4")), false, false},
		{"plain transport error", errors.New("unable to read LDAP response packet: EOF"), true, true},
		{"caller cancelled", context.Canceled, false, true},
		{"caller deadline", fmt.Errorf("op: %w", context.DeadlineExceeded), false, true},
		{"nil", nil, false, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.wantRetryable {
			t.Errorf("%s: retryable = %v, want %v", tt.name, got, tt.wantRetryable)
		}
		if got := brokenConn(tt.err); got != tt.wantBroken {
			t.Errorf("%s: brokenConn = %v, want %v", tt.name, got, tt.wantBroken)
		}
	}
}

func TestFailoverOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	f := newFailover(make([]server, 3))
	f.now = func() time.Time { return now }
	steps := []struct {
		name  string
		do    func()
		after int
		want  []int
	}{
		{"all healthy: configured order", func() {}, -1, []int{0, 1, 2}},
		{"after a failure on 0: next server first", func() {}, 0, []int{1, 2, 0}},
		{"after a failure on 2: wraps around", func() {}, 2, []int{0, 1, 2}},
		{"down server tried last", func() { f.markDown(0) }, -1, []int{1, 2, 0}},
		{"two down", func() { f.markDown(1) }, -1, []int{2, 0, 1}},
		{"recovered server back in place", func() { f.markUp(0) }, -1, []int{0, 2, 1}},
		{"down mark expires", func() { now = now.Add(serverRetryAfter + time.Second) }, -1, []int{0, 1, 2}},
	}
	for _, s := range steps {
		s.do()
		if got := f.order(s.after); fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("%s: order(%d) = %v, want %v", s.name, s.after, got, s.want)
		}
	}
}

// countingListener accepts TCP connections and counts them; it never
// answers, like a hung server.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func listenCounting(t *testing.T) *countingListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			cl.accepted.Add(1)
			cl.mu.Lock()
			cl.conns = append(cl.conns, c)
			cl.mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		cl.mu.Lock()
		defer cl.mu.Unlock()
		for _, c := range cl.conns {
			c.Close()
		}
	})
	return cl
}

func TestMalformedInputNeverReachesTheNetwork(t *testing.T) {
	l := listenCounting(t)
	cfg := validConfig()
	cfg.URLs = []string{"ldap://" + l.Addr().String()}
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tests := []struct {
		name, id, password, reason string
	}{
		{"empty password", "alice", "", ReasonEmptyPassword},
		{"empty ID", "", "pw", ReasonInvalidID},
		{"NUL in ID", "alice\x00", "pw", ReasonInvalidID},
		{"newline in ID", "alice\nuid=bob", "pw", ReasonInvalidID},
		{"invalid UTF-8", "al\xffice", "pw", ReasonInvalidID},
		{"too long", strings.Repeat("x", 257), "pw", ReasonInvalidID},
		{"empty both", "", "", ReasonInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Authenticate(context.Background(), tt.id, tt.password)
			if !errors.Is(err, ErrInvalidCredentials) || FailureReason(err) != tt.reason {
				t.Fatalf("got %v (%q), want invalid credentials (%q)", err, FailureReason(err), tt.reason)
			}
		})
	}
	if _, err := d.Lookup(context.Background(), "bad\x00id"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("Lookup of a malformed ID: got %v, want ErrUserNotFound", err)
	}
	if n := l.accepted.Load(); n != 0 {
		t.Fatalf("%d connections made for malformed input", n)
	}
	if st := d.Stats(); st.Dials != 0 || st.Open != 0 {
		t.Fatalf("stats after malformed input: %+v", st)
	}
}

func TestHungServerIsAnOutageBoundedByTimeouts(t *testing.T) {
	l := listenCounting(t)
	tests := []struct {
		name    string
		timeout time.Duration // context deadline; 0 = none, DialTimeout applies
		wantCtx error
	}{
		{"dial timeout", 0, nil},
		{"context deadline", 100 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			cfg.URLs = []string{"ldap://" + l.Addr().String()}
			cfg.DialTimeout = 300 * time.Millisecond
			cfg.OperationTimeout = 300 * time.Millisecond
			if tt.timeout > 0 {
				cfg.DialTimeout = time.Minute // only the context can end this
			}
			d, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			_, err = d.Authenticate(ctx, "alice", "pw")
			if !errors.Is(err, ErrDirectoryUnavailable) || errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("got %v, want ErrDirectoryUnavailable", err)
			}
			if tt.wantCtx != nil && !errors.Is(err, tt.wantCtx) {
				t.Fatalf("got %v, want it to wrap %v", err, tt.wantCtx)
			}
			if st := d.Stats(); st.Open != 0 || st.InUse != 0 || st.DialFailures == 0 {
				t.Fatalf("stats after failed dials: %+v", st)
			}
		})
	}
}

func TestClosedDirectoryIsUnavailable(t *testing.T) {
	d, err := New(validConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Authenticate(context.Background(), "alice", "pw"); !errors.Is(err, ErrDirectoryUnavailable) {
		t.Fatalf("Authenticate after Close: %v", err)
	}
	if err := d.Ping(context.Background()); !errors.Is(err, ErrDirectoryUnavailable) {
		t.Fatalf("Ping after Close: %v", err)
	}
}
