package devldap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func startServer(t *testing.T) *Server {
	t.Helper()
	s, err := Start(t.Context(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func dial(t *testing.T, s *Server) *ldap.Conn {
	t.Helper()
	conn, err := ldap.DialURL(s.URL(), ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatalf("dial %s: %v", s.URL(), err)
	}
	conn.SetTimeout(10 * time.Second)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func serviceConn(t *testing.T, s *Server) *ldap.Conn {
	t.Helper()
	conn := dial(t, s)
	if err := conn.Bind(ServiceDN, ServicePassword); err != nil {
		t.Fatalf("service bind: %v", err)
	}
	return conn
}

func search(base string, scope int, filter string, attrs ...string) *ldap.SearchRequest {
	return ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
}

func resultCode(err error) uint16 {
	var lerr *ldap.Error
	if errors.As(err, &lerr) {
		return lerr.ResultCode
	}
	return 0
}

func TestURLIsLoopback(t *testing.T) {
	s := startServer(t)
	if !strings.HasPrefix(s.URL(), "ldap://127.0.0.1:") || strings.HasSuffix(s.URL(), ":0") {
		t.Errorf("URL() = %q, want ldap://127.0.0.1:<port>", s.URL())
	}
}

func TestDemoAccountsCanBind(t *testing.T) {
	s := startServer(t)
	conn := dial(t, s)
	accounts := DemoAccounts()
	if len(accounts) == 0 {
		t.Fatal("no demo accounts")
	}
	for _, a := range accounts {
		t.Run(a.ID, func(t *testing.T) {
			if a.Password == "" || a.Note == "" {
				t.Errorf("demo account %+v lacks password or note", a)
			}
			if err := conn.Bind("uid="+a.ID+","+PeopleDN, a.Password); err != nil {
				t.Errorf("bind with the documented password: %v", err)
			}
			if err := conn.Bind("uid="+a.ID+","+PeopleDN, a.Password+"x"); resultCode(err) != ldap.LDAPResultInvalidCredentials {
				t.Errorf("bind with a wrong password: %v, want invalid credentials", err)
			}
		})
	}
}

func TestBind(t *testing.T) {
	s := startServer(t)
	conn := dial(t, s)
	tests := []struct {
		name, dn, password string
		want               uint16
	}{
		{"service account", ServiceDN, ServicePassword, ldap.LDAPResultSuccess},
		{"dn spelled differently", "CN=IDP-Service, OU=System, DC=Demo, DC=Example", ServicePassword, ldap.LDAPResultSuccess},
		{"wrong password", ServiceDN, "wrong", ldap.LDAPResultInvalidCredentials},
		{"password differs in case", "uid=demo1," + PeopleDN, "DEMO1-PASS", ldap.LDAPResultInvalidCredentials},
		{"unknown dn", "uid=nobody," + PeopleDN, "demo1-pass", ldap.LDAPResultInvalidCredentials},
		{"entry without password", PeopleDN, "x", ldap.LDAPResultInvalidCredentials},
		{"unauthenticated bind", "uid=demo1," + PeopleDN, "", ldap.LDAPResultUnwillingToPerform},
		{"password without name", "", "demo1-pass", ldap.LDAPResultInvalidCredentials},
		{"anonymous", "", "", ldap.LDAPResultSuccess},
		{"malformed dn", "uid=demo1,,", "demo1-pass", ldap.LDAPResultInvalidDNSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := conn.SimpleBind(&ldap.SimpleBindRequest{Username: tc.dn, Password: tc.password, AllowEmptyPassword: true})
			if got := resultCode(err); got != tc.want {
				t.Errorf("bind(%q) = %v (code %d), want code %d", tc.dn, err, got, tc.want)
			}
		})
	}
}

func TestOnlyServiceAccountMaySearch(t *testing.T) {
	s := startServer(t)
	people := search(PeopleDN, ldap.ScopeWholeSubtree, "(uid=demo1)")
	steps := []struct {
		name     string
		bind     func(c *ldap.Conn) error
		wantCode uint16
	}{
		{"no bind", func(*ldap.Conn) error { return nil }, ldap.LDAPResultInsufficientAccessRights},
		{"anonymous bind", func(c *ldap.Conn) error { return c.UnauthenticatedBind("") }, ldap.LDAPResultInsufficientAccessRights},
		{"user bind", func(c *ldap.Conn) error { return c.Bind("uid=admin1,"+PeopleDN, "admin1-pass") }, ldap.LDAPResultInsufficientAccessRights},
		{"service bind", func(c *ldap.Conn) error { return c.Bind(ServiceDN, ServicePassword) }, ldap.LDAPResultSuccess},
		// A failed bind leaves the connection anonymous, even after a good one.
		{"failed bind after service bind", func(c *ldap.Conn) error {
			if err := c.Bind(ServiceDN, ServicePassword); err != nil {
				return err
			}
			if err := c.Bind(ServiceDN, "wrong"); resultCode(err) != ldap.LDAPResultInvalidCredentials {
				return fmt.Errorf("wrong password accepted: %v", err)
			}
			return nil
		}, ldap.LDAPResultInsufficientAccessRights},
		// Verifying a user's password on the service connection ends its
		// right to search until it binds as the service again.
		{"user bind after service bind", func(c *ldap.Conn) error {
			if err := c.Bind(ServiceDN, ServicePassword); err != nil {
				return err
			}
			return c.Bind("uid=demo1,"+PeopleDN, "demo1-pass")
		}, ldap.LDAPResultInsufficientAccessRights},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, s)
			if err := tc.bind(conn); err != nil {
				t.Fatalf("bind step: %v", err)
			}
			res, err := conn.Search(people)
			if got := resultCode(err); got != tc.wantCode {
				t.Fatalf("search: %v (code %d), want code %d", err, got, tc.wantCode)
			}
			if tc.wantCode == ldap.LDAPResultSuccess && len(res.Entries) != 1 {
				t.Errorf("got %d entries, want 1", len(res.Entries))
			}
			if tc.wantCode != ldap.LDAPResultSuccess && res != nil && len(res.Entries) > 0 {
				t.Errorf("refused search still returned %d entries", len(res.Entries))
			}
		})
	}
}

func TestRootDSE(t *testing.T) {
	s := startServer(t)
	conn := dial(t, s) // anonymous: health checks run before any bind
	tests := []struct {
		name      string
		attrs     []string
		wantAttrs []string
	}{
		{"default attributes are user attributes only", nil, []string{"objectClass"}},
		{"named attribute", []string{"namingContexts"}, []string{"namingContexts"}},
		{"all operational", []string{"+"}, []string{"namingContexts", "supportedLDAPVersion", "supportedControl", "vendorName"}},
		{"no attributes", []string{"1.1"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := conn.Search(search("", ldap.ScopeBaseObject, "(objectClass=*)", tc.attrs...))
			if err != nil {
				t.Fatalf("root DSE search: %v", err)
			}
			if len(res.Entries) != 1 || res.Entries[0].DN != "" {
				t.Fatalf("got %d entries, want the root DSE", len(res.Entries))
			}
			var got []string
			for _, a := range res.Entries[0].Attributes {
				got = append(got, a.Name)
			}
			if !sameSet(got, tc.wantAttrs) {
				t.Errorf("attributes %v, want %v", got, tc.wantAttrs)
			}
		})
	}
	res, err := conn.Search(search("", ldap.ScopeBaseObject, "(objectClass=*)", "namingContexts", "supportedLDAPVersion"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Entries[0].GetAttributeValue("namingContexts"); got != BaseDN {
		t.Errorf("namingContexts = %q, want %q", got, BaseDN)
	}
	if got := res.Entries[0].GetAttributeValue("supportedLDAPVersion"); got != "3" {
		t.Errorf("supportedLDAPVersion = %q, want 3", got)
	}
}

func TestSearchScopes(t *testing.T) {
	s := startServer(t)
	conn := serviceConn(t, s)
	tests := []struct {
		name  string
		base  string
		scope int
		want  int
	}{
		{"base", PeopleDN, ldap.ScopeBaseObject, 1},
		{"one level", PeopleDN, ldap.ScopeSingleLevel, len(DemoAccounts())},
		{"subtree", PeopleDN, ldap.ScopeWholeSubtree, len(DemoAccounts()) + 1},
		{"subordinate", PeopleDN, ldap.ScopeChildren, len(DemoAccounts())},
		{"one level below the suffix", BaseDN, ldap.ScopeSingleLevel, 3},
		{"base spelled differently", "OU=People,DC=Demo,DC=Example", ldap.ScopeBaseObject, 1},
		{"leaf one level", "uid=demo1," + PeopleDN, ldap.ScopeSingleLevel, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := conn.Search(search(tc.base, tc.scope, "(objectClass=*)", "1.1"))
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			if len(res.Entries) != tc.want {
				t.Errorf("got %d entries, want %d", len(res.Entries), tc.want)
			}
		})
	}
}

func TestSearchMissingBase(t *testing.T) {
	s := startServer(t)
	conn := serviceConn(t, s)
	_, err := conn.Search(search("uid=x,ou=nowhere,"+BaseDN, ldap.ScopeWholeSubtree, "(objectClass=*)"))
	var lerr *ldap.Error
	if !errors.As(err, &lerr) || lerr.ResultCode != ldap.LDAPResultNoSuchObject {
		t.Fatalf("search: %v, want noSuchObject", err)
	}
	if lerr.MatchedDN != BaseDN {
		t.Errorf("matchedDN = %q, want %q", lerr.MatchedDN, BaseDN)
	}
	if _, err := conn.Search(search("not a dn", ldap.ScopeWholeSubtree, "(objectClass=*)")); resultCode(err) != ldap.LDAPResultInvalidDNSyntax {
		t.Errorf("malformed base: %v, want invalidDNSyntax", err)
	}
}

func TestSearchFiltersOverTheWire(t *testing.T) {
	s := startServer(t)
	conn := serviceConn(t, s)
	tests := []struct {
		filter string
		want   []string
	}{
		{"(uid=demo1)", []string{"demo1"}},
		{"(&(objectClass=inetOrgPerson)(uid=" + ldap.EscapeFilter("demo1)(uid=*") + "))", nil},
		{"(uid=" + ldap.EscapeFilter("*") + ")", nil},
		{`(cn=Pat O\2aBrien \28test\29)`, []string{"demo3"}},
		{"(displayName;lang-ja=" + ldap.EscapeFilter("山田 花子") + ")", []string{"demo2"}},
		{"(displayName;lang-ja=山田 花子)", []string{"demo2"}},
		{"(&(uid=*)(memberOf=cn=idp-helpdesk," + GroupsDN + "))", []string{"helpdesk1"}},
		{"(|(uid=admin1)(employeeType=disabled))", []string{"admin1", "disabled1"}},
		{"(&(uid=demo*)(!(uid=demo2)))", []string{"demo1", "demo3"}},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			res, err := conn.Search(search(PeopleDN, ldap.ScopeWholeSubtree, tc.filter, "uid"))
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			var got []string
			for _, e := range res.Entries {
				got = append(got, e.GetAttributeValue("uid"))
			}
			if !sameSet(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSearchAttributeSelection(t *testing.T) {
	s := startServer(t)
	conn := serviceConn(t, s)
	tests := []struct {
		name      string
		attrs     []string
		typesOnly bool
		want      []string
	}{
		{"base type includes tagged values", []string{"displayName"}, false, []string{"displayName", "displayName;lang-ja"}},
		{"tagged type only", []string{"displayName;lang-ja"}, false, []string{"displayName;lang-ja"}},
		{"names ignore case", []string{"DISPLAYNAME;Lang-JA", "UID"}, false, []string{"displayName;lang-ja", "uid"}},
		{"alias", []string{"surname"}, false, []string{"sn", "sn;lang-ja"}},
		{"no attributes", []string{"1.1"}, false, nil},
		{"unknown attribute", []string{"noSuchAttr"}, false, nil},
		{"password is never returned", []string{"userPassword"}, false, nil},
		{"all user attributes", []string{"*"}, false, []string{
			"objectClass", "uid", "cn", "cn;lang-ja", "sn", "sn;lang-ja", "givenName", "givenName;lang-ja",
			"displayName", "displayName;lang-ja", "mail", "employeeNumber", "employeeType", "memberOf"}},
		{"types only", []string{"mail"}, true, []string{"mail"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := ldap.NewSearchRequest("uid=demo2,"+PeopleDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
				0, 0, tc.typesOnly, "(objectClass=*)", tc.attrs, nil)
			res, err := conn.Search(req)
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			if len(res.Entries) != 1 {
				t.Fatalf("got %d entries, want 1", len(res.Entries))
			}
			var got []string
			for _, a := range res.Entries[0].Attributes {
				got = append(got, a.Name)
				if tc.typesOnly && len(a.Values) != 0 {
					t.Errorf("types-only search returned values for %s", a.Name)
				}
				if !tc.typesOnly && len(a.Values) == 0 {
					t.Errorf("attribute %s returned without values", a.Name)
				}
			}
			if !sameSet(got, tc.want) {
				t.Errorf("attributes %v, want %v", got, tc.want)
			}
		})
	}
	res, err := conn.Search(search("uid=demo2,"+PeopleDN, ldap.ScopeBaseObject, "(objectClass=*)", "displayName;lang-ja"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Entries[0].GetAttributeValue("displayName;lang-ja"); got != "山田 花子" {
		t.Errorf("displayName;lang-ja = %q", got)
	}
}

func TestSearchSizeLimit(t *testing.T) {
	s := startServer(t)
	conn := serviceConn(t, s)
	req := ldap.NewSearchRequest(PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 2, 0, false, "(uid=*)", []string{"uid"}, nil)
	res, err := conn.Search(req)
	if resultCode(err) != ldap.LDAPResultSizeLimitExceeded {
		t.Fatalf("search: %v, want sizeLimitExceeded", err)
	}
	if res == nil || len(res.Entries) != 2 {
		t.Fatalf("got %v, want 2 entries before the limit", res)
	}
	req.SizeLimit = len(DemoAccounts())
	if res, err := conn.Search(req); err != nil || len(res.Entries) != len(DemoAccounts()) {
		t.Errorf("search at exactly the limit: %v, %v", res, err)
	}
}

func TestSearchWithPaging(t *testing.T) {
	s := startServer(t)
	conn := serviceConn(t, s)
	for _, pageSize := range []uint32{1, 2, 4, 100} {
		t.Run(fmt.Sprint(pageSize), func(t *testing.T) {
			res, err := conn.SearchWithPaging(search(BaseDN, ldap.ScopeWholeSubtree, "(objectClass=*)", "1.1"), pageSize)
			if err != nil {
				t.Fatalf("paged search: %v", err)
			}
			var dns []string
			for _, e := range res.Entries {
				dns = append(dns, e.DN)
			}
			slices.Sort(dns)
			if len(slices.Compact(slices.Clone(dns))) != len(dns) {
				t.Errorf("duplicate entries across pages: %v", dns)
			}
			all, err := conn.Search(search(BaseDN, ldap.ScopeWholeSubtree, "(objectClass=*)", "1.1"))
			if err != nil {
				t.Fatal(err)
			}
			if len(dns) != len(all.Entries) {
				t.Errorf("paged search returned %d entries, plain search %d", len(dns), len(all.Entries))
			}
		})
	}
}

func TestDirectoryIsReadOnly(t *testing.T) {
	s := startServer(t)
	conn := serviceConn(t, s)
	dn := "uid=demo1," + PeopleDN
	mod := ldap.NewModifyRequest(dn, nil)
	mod.Replace("mail", []string{"x@example.com"})
	add := ldap.NewAddRequest("uid=new,"+PeopleDN, nil)
	add.Attribute("uid", []string{"new"})
	ops := map[string]func() error{
		"modify": func() error { return conn.Modify(mod) },
		"add":    func() error { return conn.Add(add) },
		"delete": func() error { return conn.Del(ldap.NewDelRequest(dn, nil)) },
	}
	for name, op := range ops {
		if err := op(); resultCode(err) != ldap.LDAPResultUnwillingToPerform {
			t.Errorf("%s: %v, want unwillingToPerform", name, err)
		}
	}
	res, err := conn.Search(search(dn, ldap.ScopeBaseObject, "(objectClass=*)", "mail"))
	if err != nil || res.Entries[0].GetAttributeValue("mail") != "demo1@mail.demo.example" {
		t.Errorf("entry changed after refused modify: %v %v", res, err)
	}
}

func TestConcurrentClients(t *testing.T) {
	s := startServer(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		account := DemoAccounts()[i%len(DemoAccounts())]
		wg.Go(func() {
			conn, err := ldap.DialURL(s.URL())
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			for range 10 {
				if err := conn.Bind(ServiceDN, ServicePassword); err != nil {
					errs <- err
					return
				}
				res, err := conn.Search(search(PeopleDN, ldap.ScopeSingleLevel, "(uid="+ldap.EscapeFilter(account.ID)+")", "uid"))
				if err != nil || len(res.Entries) != 1 {
					errs <- fmt.Errorf("search %s: %v", account.ID, err)
					return
				}
				if err := conn.Bind(res.Entries[0].DN, account.Password); err != nil {
					errs <- fmt.Errorf("user bind %s: %v", account.ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCloseEndsIdleConnections: a pooled client keeps connections open; Close
// must not wait for it.
func TestCloseEndsIdleConnections(t *testing.T) {
	s, err := Start(t.Context(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, s)
	if err := conn.Bind(ServiceDN, ServicePassword); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close hung on an idle client connection")
	}
	if _, err := conn.Search(search("", ldap.ScopeBaseObject, "(objectClass=*)")); err == nil {
		t.Error("search on a closed server succeeded")
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL(), "ldap://"), time.Second); err == nil {
		c.Close()
		t.Error("server still accepts connections after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestContextCancelStopsServer(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	addr := strings.TrimPrefix(s.URL(), "ldap://")
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still listening after its context was cancelled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after cancel: %v", err)
	}
}

func TestStartOnGivenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := Start(t.Context(), addr, nil)
	if err != nil {
		t.Fatalf("Start(%s): %v", addr, err)
	}
	defer s.Close()
	if s.URL() != "ldap://"+addr {
		t.Errorf("URL() = %q, want ldap://%s", s.URL(), addr)
	}
	// The address is now taken: a second server must fail, not share it.
	if s2, err := Start(t.Context(), addr, nil); err == nil {
		s2.Close()
		t.Error("second Start on a busy address succeeded")
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsNeverHoldPasswords runs binds with debug logging on and checks no
// password, right or wrong, reaches the log.
func TestLogsNeverHoldPasswords(t *testing.T) {
	var buf lockedBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Start(t.Context(), "", logger)
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, s)
	const wrong = "wrong-password-7f3a"
	if err := conn.Bind(ServiceDN, ServicePassword); err != nil {
		t.Fatal(err)
	}
	if err := conn.Bind("uid=demo1,"+PeopleDN, wrong); err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := conn.Search(search("", ldap.ScopeBaseObject, "(objectClass=*)")); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs := buf.String()
	if !strings.Contains(logs, "ldap bind failed") {
		t.Fatalf("expected the failed bind to be logged; logs:\n%s", logs)
	}
	for _, secret := range []string{ServicePassword, wrong} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains password %q:\n%s", secret, logs)
		}
	}
}
