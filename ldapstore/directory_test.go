package ldapstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
)

func newDirectory(t *testing.T, cfg ldapstore.Config) *ldapstore.Directory {
	t.Helper()
	d, err := ldapstore.New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func searchGroupsConfig(cfg ldapstore.Config) ldapstore.Config {
	cfg.Groups = ldapstore.Groups{
		Mode:          ldapstore.GroupsSearch,
		BaseDN:        testldap.GroupsDN,
		Filter:        "(&(objectClass=groupOfNames)(member={dn}))",
		NameAttribute: "cn",
	}
	return cfg
}

func checkUser(t *testing.T, got *ldapstore.User, want testldap.User) {
	t.Helper()
	if got == nil {
		t.Fatal("nil user")
	}
	fields := []struct{ name, got, want string }{
		{"ID", got.ID, want.ID},
		{"DN", got.DN, want.DN},
		{"DisplayName", got.DisplayName, want.DisplayName},
		{"DisplayNameJA", got.DisplayNameJA, want.DisplayNameJA},
		{"Mail", got.Mail, want.Mail},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if !slices.Equal(got.Groups, want.Groups) {
		t.Errorf("Groups = %v, want %v", got.Groups, want.Groups)
	}
	if got.Disabled != (want.EmployeeType == "disabled") {
		t.Errorf("Disabled = %v", got.Disabled)
	}
	if v := got.Attributes["employeeType"]; !slices.Equal(v, []string{want.EmployeeType}) {
		t.Errorf("Attributes[employeeType] = %v, want [%s]", v, want.EmployeeType)
	}
	if v := got.Attributes["displayName"]; !slices.Equal(v, []string{want.DisplayName}) {
		t.Errorf("Attributes[displayName] = %v: language variants must stay apart", v)
	}
	for name := range got.Attributes {
		if strings.EqualFold(name, "userPassword") {
			t.Errorf("user password attribute fetched")
		}
	}
}

func TestAuthenticateMapsUser(t *testing.T) {
	s := testldap.Start(t)
	modes := map[string]ldapstore.Config{
		"memberof": s.Config(),
		"search":   searchGroupsConfig(s.Config()),
	}
	tests := []struct {
		name     string
		id       string
		password string
		want     testldap.User
	}{
		{"alice", "alice", testldap.Alice.Password, testldap.Alice},
		{"taro with spaces and non-ASCII in the password", "taro", testldap.Taro.Password, testldap.Taro},
		{"bob", "bob", testldap.Bob.Password, testldap.Bob},
		{"helpdesk", "helpdesk1", testldap.Helpdesk.Password, testldap.Helpdesk},
		{"admin", "admin1", testldap.Admin.Password, testldap.Admin},
		{"ID in other case gives the stored ID", "ALICE", testldap.Alice.Password, testldap.Alice},
	}
	for mode, cfg := range modes {
		d := newDirectory(t, cfg)
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				u, err := d.Authenticate(context.Background(), tt.id, tt.password)
				if err != nil {
					t.Fatalf("Authenticate: %v (reason %q)", err, ldapstore.FailureReason(err))
				}
				checkUser(t, u, tt.want)
			})
		}
	}
}

func TestAuthenticateRefusals(t *testing.T) {
	s := testldap.Start(t)
	d := newDirectory(t, s.Config())
	tests := []struct {
		name, id, password, reason string
	}{
		{"wrong password", "alice", "alice-password2", ldapstore.ReasonWrongPassword},
		{"another user's password", "alice", testldap.Bob.Password, ldapstore.ReasonWrongPassword},
		{"trimmed password", "taro", strings.TrimSpace(testldap.Taro.Password), ldapstore.ReasonWrongPassword},
		{"password with extra space", "alice", testldap.Alice.Password + " ", ldapstore.ReasonWrongPassword},
		{"unknown ID", "nobody", "whatever", ldapstore.ReasonUnknownID},
		{"empty password", "alice", "", ldapstore.ReasonEmptyPassword},
		{"disabled account with its right password", "carol", testldap.Disabled.Password, ldapstore.ReasonDisabled},
		{"disabled account with a wrong password", "carol", "nope", ldapstore.ReasonDisabled},
		{"service account is not a user", "idp-service", testldap.ServicePassword, ldapstore.ReasonUnknownID},
		{"control character", "alice\n", testldap.Alice.Password, ldapstore.ReasonInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := d.Authenticate(context.Background(), tt.id, tt.password)
			if u != nil || !errors.Is(err, ldapstore.ErrInvalidCredentials) {
				t.Fatalf("got %v, %v; want ErrInvalidCredentials", u, err)
			}
			if errors.Is(err, ldapstore.ErrDirectoryUnavailable) {
				t.Fatal("credential failure also claims an outage")
			}
			if got := ldapstore.FailureReason(err); got != tt.reason {
				t.Fatalf("FailureReason = %q, want %q", got, tt.reason)
			}
			if err.Error() != ldapstore.ErrInvalidCredentials.Error() {
				t.Fatalf("message %q reveals more than the generic failure", err.Error())
			}
		})
	}
}

// requestLines returns slapd's log lines for requests (not results) in log.
func requestLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, " SRCH base=") || (strings.Contains(line, " BIND dn=") && strings.Contains(line, " method=")) {
			out = append(out, line)
		}
	}
	return out
}

func TestInjectionIDsNeverAuthenticate(t *testing.T) {
	s := testldap.Start(t)
	d := newDirectory(t, s.Config())
	// Alice's password is offered each time: an unescaped filter would
	// match her entry (or several entries) and let the attempt through.
	tests := []struct {
		id         string
		reason     string
		sentFilter string // as slapd logs it; "" = nothing may be sent
	}{
		{"*)(uid=*", ldapstore.ReasonUnknownID, `(uid=\2A\29\28uid=\2A)`},
		{"*", ldapstore.ReasonUnknownID, `(uid=\2A)`},
		{"a)(|(uid=*", ldapstore.ReasonUnknownID, `(uid=a\29\28|\28uid=\2A)`},
		{"alice)(uid=*", ldapstore.ReasonUnknownID, `(uid=alice\29\28uid=\2A)`},
		{"user,ou=admins", ldapstore.ReasonUnknownID, `(uid=user,ou=admins)`},
		{"ali*", ldapstore.ReasonUnknownID, `(uid=ali\2A)`},
		{"alice\x00", ldapstore.ReasonInvalidID, ""},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			before := len(s.Log())
			u, err := d.Authenticate(context.Background(), tt.id, testldap.Alice.Password)
			if u != nil || !errors.Is(err, ldapstore.ErrInvalidCredentials) || ldapstore.FailureReason(err) != tt.reason {
				t.Fatalf("got %v, %v (%q); want invalid credentials (%q)", u, err, ldapstore.FailureReason(err), tt.reason)
			}
			sent := s.Log()[before:]
			if tt.sentFilter == "" {
				if lines := requestLines(sent); len(lines) > 0 {
					t.Fatalf("malformed ID reached slapd: %q", lines)
				}
				return
			}
			want := `filter="(&(objectClass=inetOrgPerson)` + tt.sentFilter + `)"`
			if !strings.Contains(sent, want) {
				t.Fatalf("slapd did not receive the escaped filter %s; log:\n%s", want, sent)
			}
		})
	}
}

var opPattern = regexp.MustCompile(`conn=(\d+) op=\d+ (SRCH|BIND) (base|dn)="([^"]*)"`)

type request struct{ conn, op, target string }

func parseRequests(log string) []request {
	var out []request
	for _, line := range requestLines(log) {
		if m := opPattern.FindStringSubmatch(line); m != nil {
			out = append(out, request{conn: m[1], op: m[2], target: m[4]})
		}
	}
	return out
}

func TestUnknownIDCostsTheSameRoundTripsAsAWrongPassword(t *testing.T) {
	s := testldap.Start(t)
	for _, mode := range []string{"memberof", "search"} {
		t.Run(mode, func(t *testing.T) {
			cfg := s.Config()
			if mode == "search" {
				cfg = searchGroupsConfig(cfg)
			}
			d := newDirectory(t, cfg)
			// Warm both pools so neither attempt pays for a dial.
			if _, err := d.Authenticate(context.Background(), "alice", testldap.Alice.Password); err != nil {
				t.Fatal(err)
			}
			ops := func(id, password string) []string {
				before := len(s.Log())
				_, err := d.Authenticate(context.Background(), id, password)
				if !errors.Is(err, ldapstore.ErrInvalidCredentials) {
					t.Fatalf("%s: %v", id, err)
				}
				var kinds []string
				for _, r := range parseRequests(s.Log()[before:]) {
					kinds = append(kinds, r.op)
				}
				return kinds
			}
			known := ops("alice", "wrong")
			unknown := ops("nobody-here", "wrong")
			if !slices.Equal(known, unknown) {
				t.Fatalf("round trips differ: wrong password %v, unknown ID %v", known, unknown)
			}
			if !slices.Contains(unknown, "BIND") {
				t.Fatalf("unknown ID made no bind attempt: %v", unknown)
			}
			if !strings.Contains(s.Log(), `BIND dn="cn=nonexistent-timing,`+testldap.PeopleDN+`"`) {
				t.Fatal("unknown ID did not bind against the timing DN")
			}
		})
	}
}

func TestUserBindsNeverShareServiceConnections(t *testing.T) {
	s := testldap.Start(t)
	cfg := s.Config()
	cfg.PoolSize = 2
	d := newDirectory(t, cfg)
	before := len(s.Log())
	for i := 0; i < 5; i++ {
		for _, u := range []testldap.User{testldap.Alice, testldap.Taro, testldap.Bob} {
			if _, err := d.Authenticate(context.Background(), u.ID, u.Password); err != nil {
				t.Fatalf("%s: %v", u.ID, err)
			}
			if _, err := d.Lookup(context.Background(), u.ID); err != nil {
				t.Fatalf("lookup %s: %v", u.ID, err)
			}
		}
	}
	searchConns := map[string]bool{}
	userBindConns := map[string]bool{}
	for _, r := range parseRequests(s.Log()[before:]) {
		switch {
		case r.op == "SRCH":
			searchConns[r.conn] = true
		case r.target != testldap.ServiceDN:
			userBindConns[r.conn] = true
		}
	}
	if len(searchConns) == 0 || len(userBindConns) == 0 {
		t.Fatalf("log parsing found no traffic: search conns %v, bind conns %v", searchConns, userBindConns)
	}
	for c := range userBindConns {
		if searchConns[c] {
			t.Fatalf("connection %s both bound as a user and searched", c)
		}
	}
}

func TestDirectoryDownIsAnOutageAndRecovers(t *testing.T) {
	s := testldap.Start(t)
	cfg := s.Config()
	cfg.DialTimeout = 500 * time.Millisecond
	d := newDirectory(t, cfg)
	ctx := context.Background()
	if _, err := d.Authenticate(ctx, "alice", testldap.Alice.Password); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	outage := []struct {
		name string
		call func() error
	}{
		{"Authenticate known", func() error { _, err := d.Authenticate(ctx, "alice", testldap.Alice.Password); return err }},
		{"Authenticate unknown", func() error { _, err := d.Authenticate(ctx, "nobody", "pw"); return err }},
		{"Lookup", func() error { _, err := d.Lookup(ctx, "alice"); return err }},
		{"Ping", func() error { return d.Ping(ctx) }},
	}
	for _, o := range outage {
		err := o.call()
		if !errors.Is(err, ldapstore.ErrDirectoryUnavailable) || errors.Is(err, ldapstore.ErrInvalidCredentials) ||
			errors.Is(err, ldapstore.ErrUserNotFound) || ldapstore.FailureReason(err) != "" {
			t.Fatalf("%s with slapd stopped: got %v, want only ErrDirectoryUnavailable", o.name, err)
		}
	}
	if st := d.Stats(); st.DialFailures == 0 {
		t.Fatalf("no dial failures counted: %+v", st)
	}

	s.Restart(t)
	u, err := d.Authenticate(ctx, "alice", testldap.Alice.Password)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	checkUser(t, u, testldap.Alice)
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
}

// blackhole forwards TCP to target until cut; then it drops the server
// side and leaves clients hanging, as a dead network path does.
type blackhole struct {
	listener net.Listener
	target   string
	mu       sync.Mutex
	server   []net.Conn
	client   []net.Conn
}

func newBlackhole(t *testing.T, targetURL string) *blackhole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{listener: l, target: strings.TrimPrefix(targetURL, "ldap://")}
	go b.serve()
	t.Cleanup(func() {
		l.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range append(b.server, b.client...) {
			c.Close()
		}
	})
	return b
}

func (b *blackhole) URL() string { return "ldap://" + b.listener.Addr().String() }

func (b *blackhole) serve() {
	for {
		client, err := b.listener.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", b.target)
		if err != nil {
			client.Close()
			continue
		}
		b.mu.Lock()
		b.server = append(b.server, server)
		b.client = append(b.client, client)
		b.mu.Unlock()
		go func() { _, _ = io.Copy(client, server) }()
		go func() {
			_, _ = io.Copy(server, client)
			_, _ = io.Copy(io.Discard, client) // after the cut: swallow requests
		}()
	}
}

func (b *blackhole) cut() {
	b.listener.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.server {
		c.Close()
	}
}

func TestFailover(t *testing.T) {
	primary, secondary := testldap.Start(t), testldap.Start(t)
	deadPort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return "ldap://" + l.Addr().String()
	}()

	t.Run("dead port first", func(t *testing.T) {
		cfg := secondary.Config()
		cfg.URLs = []string{deadPort, secondary.URL}
		d := newDirectory(t, cfg)
		if _, err := d.Authenticate(context.Background(), "alice", testldap.Alice.Password); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		if st := d.Stats(); st.DialFailures == 0 {
			t.Fatalf("the dead port was not tried first: %+v", st)
		}
	})

	t.Run("stopped server first", func(t *testing.T) {
		stopped := testldap.Start(t)
		stopped.Stop()
		cfg := secondary.Config()
		cfg.URLs = []string{stopped.URL, secondary.URL}
		d := newDirectory(t, cfg)
		u, err := d.Authenticate(context.Background(), "taro", testldap.Taro.Password)
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		checkUser(t, u, testldap.Taro)
	})

	t.Run("primary goes silent mid-use", func(t *testing.T) {
		hole := newBlackhole(t, primary.URL)
		cfg := primary.Config()
		cfg.URLs = []string{hole.URL(), secondary.URL}
		cfg.OperationTimeout = 300 * time.Millisecond
		d := newDirectory(t, cfg)
		if _, err := d.Authenticate(context.Background(), "alice", testldap.Alice.Password); err != nil {
			t.Fatalf("through the primary: %v", err)
		}
		hole.cut()
		before := len(secondary.Log())
		if _, err := d.Authenticate(context.Background(), "alice", testldap.Alice.Password); err != nil {
			t.Fatalf("after the primary went silent: %v", err)
		}
		if !strings.Contains(secondary.Log()[before:], `BIND dn="`+testldap.Alice.DN+`"`) {
			t.Fatal("the secondary did not verify the password")
		}
		if _, err := d.Authenticate(context.Background(), "bob", "wrong"); ldapstore.FailureReason(err) != ldapstore.ReasonWrongPassword {
			t.Fatalf("wrong password after failover: %v", err)
		}
	})
}

func TestTLS(t *testing.T) {
	s := testldap.Start(t, testldap.WithTLS())
	tests := []struct {
		name       string
		modify     func(*ldapstore.Config)
		wantOutage bool
	}{
		{"ldaps with CA file", func(c *ldapstore.Config) { c.URLs = []string{s.LDAPSURL}; c.CAFile = s.CAFile }, false},
		{"StartTLS with CA file", func(c *ldapstore.Config) { c.StartTLS = true; c.CAFile = s.CAFile }, false},
		{"ldaps insecure", func(c *ldapstore.Config) { c.URLs = []string{s.LDAPSURL}; c.InsecureSkipVerify = true }, false},
		{"ldaps with untrusted certificate", func(c *ldapstore.Config) { c.URLs = []string{s.LDAPSURL} }, true},
		{"StartTLS with untrusted certificate", func(c *ldapstore.Config) { c.StartTLS = true }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := s.Config()
			tt.modify(&cfg)
			d := newDirectory(t, cfg)
			u, err := d.Authenticate(context.Background(), "taro", testldap.Taro.Password)
			if tt.wantOutage {
				if !errors.Is(err, ldapstore.ErrDirectoryUnavailable) || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("got %v, want an outage naming the certificate", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			checkUser(t, u, testldap.Taro)
		})
	}
}

func TestParallelAuthenticate(t *testing.T) {
	s := testldap.Start(t)
	cfg := s.Config()
	cfg.PoolSize = 4
	d := newDirectory(t, cfg)
	cases := []struct {
		id, password, reason string
	}{
		{"alice", testldap.Alice.Password, ""},
		{"taro", testldap.Taro.Password, ""},
		{"bob", "wrong", ldapstore.ReasonWrongPassword},
		{"nobody", "pw", ldapstore.ReasonUnknownID},
		{"carol", testldap.Disabled.Password, ldapstore.ReasonDisabled},
	}
	const workers = 50
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		c := cases[i%len(cases)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := d.Authenticate(context.Background(), c.id, c.password)
			switch {
			case c.reason == "" && (err != nil || u == nil || u.ID != c.id):
				errs <- fmt.Errorf("%s: got %v, %v", c.id, u, err)
			case c.reason != "" && ldapstore.FailureReason(err) != c.reason:
				errs <- fmt.Errorf("%s: got %v (%q), want %q", c.id, err, ldapstore.FailureReason(err), c.reason)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := d.Stats()
	if st.InUse != 0 || st.Open > 2*cfg.PoolSize || st.Open != st.Idle {
		t.Fatalf("pool after the burst: %+v (pool size %d per kind)", st, cfg.PoolSize)
	}
}

func TestLookup(t *testing.T) {
	s := testldap.Start(t)
	d := newDirectory(t, s.Config())
	ctx := context.Background()
	tests := []struct {
		id      string
		want    *testldap.User
		wantErr error
	}{
		{"alice", &testldap.Alice, nil},
		{"taro", &testldap.Taro, nil},
		{"carol", &testldap.Disabled, nil},
		{"Admin1", &testldap.Admin, nil},
		{"nobody", nil, ldapstore.ErrUserNotFound},
		{"*", nil, ldapstore.ErrUserNotFound},
		{"", nil, ldapstore.ErrUserNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			u, err := d.Lookup(ctx, tt.id)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || u != nil {
					t.Fatalf("got %v, %v; want %v", u, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkUser(t, u, *tt.want)
		})
	}

	t.Run("reads live data", func(t *testing.T) {
		s.Modify(t, "dn: "+testldap.Bob.DN+"\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n")
		u, err := d.Lookup(ctx, "bob")
		if err != nil || !u.Disabled {
			t.Fatalf("after disabling bob: %+v, %v", u, err)
		}
		_, err = d.Authenticate(ctx, "bob", testldap.Bob.Password)
		if ldapstore.FailureReason(err) != ldapstore.ReasonDisabled {
			t.Fatalf("Authenticate disabled bob: %v (%q)", err, ldapstore.FailureReason(err))
		}
		s.Modify(t, "dn: "+testldap.Bob.DN+"\nchangetype: delete\n")
		if _, err := d.Lookup(ctx, "bob"); !errors.Is(err, ldapstore.ErrUserNotFound) {
			t.Fatalf("Lookup of deleted bob: %v", err)
		}
	})
}

func TestAmbiguousIDIsRefused(t *testing.T) {
	s := testldap.Start(t)
	s.Modify(t, `dn: uid=twin,ou=people,dc=campus,dc=example
changetype: add
objectClass: inetOrgPerson
uid: twin
cn: Twin One
sn: One
userPassword: twin-password

dn: cn=Twin Two,ou=people,dc=campus,dc=example
changetype: add
objectClass: inetOrgPerson
uid: twin
cn: Twin Two
sn: Two
userPassword: twin-password
`)
	d := newDirectory(t, s.Config())
	_, err := d.Authenticate(context.Background(), "twin", "twin-password")
	if ldapstore.FailureReason(err) != ldapstore.ReasonAmbiguousID {
		t.Fatalf("Authenticate: %v (%q), want %q", err, ldapstore.FailureReason(err), ldapstore.ReasonAmbiguousID)
	}
	if _, err := d.Lookup(context.Background(), "twin"); !errors.Is(err, ldapstore.ErrUserNotFound) {
		t.Fatalf("Lookup: %v, want ErrUserNotFound", err)
	}
	// A filter broad enough to hit the size limit is ambiguous too.
	cfg := s.Config()
	cfg.UserFilter = "(|(uid={id})(objectClass=inetOrgPerson))"
	d = newDirectory(t, cfg)
	if _, err := d.Authenticate(context.Background(), "alice", testldap.Alice.Password); ldapstore.FailureReason(err) != ldapstore.ReasonAmbiguousID {
		t.Fatalf("broad filter: %v, want %q", err, ldapstore.ReasonAmbiguousID)
	}
}

func TestMisconfigurationIsAnOutage(t *testing.T) {
	s := testldap.Start(t)
	tests := []struct {
		name   string
		modify func(*ldapstore.Config)
	}{
		{"wrong service password", func(c *ldapstore.Config) { c.BindPassword = "not-the-secret" }},
		{"missing user base", func(c *ldapstore.Config) { c.UserBaseDN = "ou=nowhere," + testldap.BaseDN }},
		{"group search base missing", func(c *ldapstore.Config) {
			*c = searchGroupsConfig(*c)
			c.Groups.BaseDN = "ou=nowhere," + testldap.BaseDN
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := s.Config()
			tt.modify(&cfg)
			d := newDirectory(t, cfg)
			_, err := d.Authenticate(context.Background(), "alice", testldap.Alice.Password)
			if !errors.Is(err, ldapstore.ErrDirectoryUnavailable) || errors.Is(err, ldapstore.ErrInvalidCredentials) {
				t.Fatalf("Authenticate: got %v, want ErrDirectoryUnavailable", err)
			}
		})
	}
	cfg := s.Config()
	cfg.UserBaseDN = "ou=nowhere," + testldap.BaseDN
	if err := newDirectory(t, cfg).Ping(context.Background()); !errors.Is(err, ldapstore.ErrDirectoryUnavailable) {
		t.Fatalf("Ping with a missing base: %v", err)
	}
}

func TestPingAndIdleReplacement(t *testing.T) {
	s := testldap.Start(t)
	cfg := s.Config()
	cfg.IdleTimeout = 50 * time.Millisecond
	d := newDirectory(t, cfg)
	if err := d.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := d.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if st := d.Stats(); st.Dials != 1 || st.Open != 1 || st.Idle != 1 {
		t.Fatalf("a fresh connection should be reused: %+v", st)
	}
	time.Sleep(2 * cfg.IdleTimeout)
	if err := d.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after idling: %v", err)
	}
	if st := d.Stats(); st.Dials != 2 || st.Open != 1 {
		t.Fatalf("a connection idle past IdleTimeout should be replaced: %+v", st)
	}
}

func TestCancelledContext(t *testing.T) {
	s := testldap.Start(t)
	d := newDirectory(t, s.Config())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := d.Authenticate(ctx, "alice", testldap.Alice.Password)
	if !errors.Is(err, ldapstore.ErrDirectoryUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want an outage wrapping context.Canceled", err)
	}
	if _, err := d.Authenticate(context.Background(), "alice", testldap.Alice.Password); err != nil {
		t.Fatalf("a cancelled call must not spoil the pool: %v", err)
	}
}

func TestCancellationInterruptsAHungOperation(t *testing.T) {
	s := testldap.Start(t)
	hole := newBlackhole(t, s.URL)
	cfg := s.Config()
	cfg.URLs = []string{hole.URL()}
	cfg.OperationTimeout = time.Minute // only cancellation can end the hung call
	d := newDirectory(t, cfg)
	if _, err := d.Authenticate(context.Background(), "alice", testldap.Alice.Password); err != nil {
		t.Fatal(err)
	}
	hole.cut()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := d.Authenticate(ctx, "alice", testldap.Alice.Password)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ldapstore.ErrDirectoryUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want an outage wrapping context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Authenticate ignored the cancelled context")
	}
	if st := d.Stats(); st.InUse != 0 {
		t.Fatalf("connection leaked after cancellation: %+v", st)
	}
}

// TestCheckGroupsFindsMissingMemberOf: in memberof mode against a slapd
// without the memberof overlay, CheckGroups says nobody carries memberOf;
// with the overlay, or in search mode, it finds nothing wrong (issue 14).
func TestCheckGroupsFindsMissingMemberOf(t *testing.T) {
	t.Parallel()
	with, without := testldap.Start(t), testldap.Start(t, testldap.WithoutMemberOf())
	tests := []struct {
		name string
		cfg  ldapstore.Config
		want error
	}{
		{"memberof with the overlay", with.Config(), nil},
		{"memberof without the overlay", without.Config(), ldapstore.ErrNoMemberOf},
		{"search without the overlay", searchGroupsConfig(without.Config()), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newDirectory(t, tt.cfg).CheckGroups(context.Background()); !errors.Is(got, tt.want) || (tt.want == nil && got != nil) {
				t.Errorf("CheckGroups = %v, want %v", got, tt.want)
			}
		})
	}
}
