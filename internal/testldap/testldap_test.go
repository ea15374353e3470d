package testldap_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/campusidp/campusidp/internal/testldap"
)

func dial(t *testing.T, url string) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func searchUser(t *testing.T, c *ldap.Conn, id string, attrs ...string) []*ldap.Entry {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(testldap.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(uid="+ldap.EscapeFilter(id)+")", attrs, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Fatalf("search %s: %v", id, err)
	}
	if res == nil {
		return nil
	}
	return res.Entries
}

func TestFixtureUsersBindWithExactPasswords(t *testing.T) {
	s := testldap.Start(t)
	for _, u := range testldap.Users() {
		t.Run(u.ID, func(t *testing.T) {
			c := dial(t, s.URL)
			if err := c.Bind(u.DN, u.Password); err != nil {
				t.Fatalf("bind with the fixture password: %v", err)
			}
			if trimmed := strings.TrimSpace(u.Password); trimmed != u.Password {
				err := c.Bind(u.DN, trimmed)
				if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
					t.Fatalf("bind with trimmed password: got %v, want invalid credentials", err)
				}
			}
		})
	}
}

func TestFixtureEntriesAndMemberOf(t *testing.T) {
	s := testldap.Start(t)
	c := dial(t, s.URL)
	if err := c.Bind(testldap.ServiceDN, testldap.ServicePassword); err != nil {
		t.Fatalf("service bind: %v", err)
	}
	for _, u := range testldap.Users() {
		t.Run(u.ID, func(t *testing.T) {
			entries := searchUser(t, c, u.ID, "mail", "displayName", "displayName;lang-ja", "employeeType", "memberOf")
			if len(entries) != 1 {
				t.Fatalf("got %d entries, want 1", len(entries))
			}
			e := entries[0]
			if e.DN != u.DN {
				t.Errorf("DN = %q, want %q", e.DN, u.DN)
			}
			checks := map[string]string{
				"mail": u.Mail, "displayName": u.DisplayName, "displayName;lang-ja": u.DisplayNameJA, "employeeType": u.EmployeeType,
			}
			for attr, want := range checks {
				if got := e.GetEqualFoldAttributeValue(attr); got != want {
					t.Errorf("%s = %q, want %q", attr, got, want)
				}
			}
			var groups []string
			for _, dn := range e.GetAttributeValues("memberOf") {
				groups = append(groups, strings.TrimPrefix(strings.TrimSuffix(dn, ","+testldap.GroupsDN), "cn="))
			}
			slices.Sort(groups)
			if !slices.Equal(groups, u.Groups) {
				t.Errorf("memberOf groups = %v, want %v", groups, u.Groups)
			}
		})
	}
}

func TestAccessControl(t *testing.T) {
	s := testldap.Start(t)
	tests := []struct {
		name           string
		bindDN, bindPW string // empty = anonymous
		wantVisible    bool
	}{
		{"anonymous sees nothing", "", "", false},
		{"a user cannot read other users", testldap.Alice.DN, testldap.Alice.Password, false},
		{"the service account reads", testldap.ServiceDN, testldap.ServicePassword, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, s.URL)
			if tt.bindDN != "" {
				if err := c.Bind(tt.bindDN, tt.bindPW); err != nil {
					t.Fatalf("bind: %v", err)
				}
			}
			entries := searchUser(t, c, testldap.Bob.ID, "mail", "userPassword")
			if got := len(entries) == 1; got != tt.wantVisible {
				t.Fatalf("bob visible = %v, want %v", got, tt.wantVisible)
			}
			for _, e := range entries {
				if pw := e.GetAttributeValues("userPassword"); len(pw) > 0 {
					t.Errorf("userPassword readable: %q", pw)
				}
			}
		})
	}
}

func TestModifyStopRestartKeepsDataAndPort(t *testing.T) {
	s := testldap.Start(t)
	url := s.URL
	s.Modify(t, "dn: "+testldap.Alice.DN+"\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n")

	s.Stop()
	if c, err := ldap.DialURL(url); err == nil {
		c.Close()
		t.Fatal("dial succeeded after Stop")
	}
	s.Stop() // stopping twice is harmless

	s.Restart(t)
	if s.URL != url {
		t.Fatalf("URL changed on restart: %s -> %s", url, s.URL)
	}
	c := dial(t, s.URL)
	if err := c.Bind(testldap.ServiceDN, testldap.ServicePassword); err != nil {
		t.Fatalf("service bind after restart: %v", err)
	}
	entries := searchUser(t, c, testldap.Alice.ID, "employeeType")
	if len(entries) != 1 || entries[0].GetAttributeValue("employeeType") != "disabled" {
		t.Fatalf("modification lost across restart: %v", entries)
	}
	if !strings.Contains(s.Log(), "SRCH") {
		t.Error("slapd log does not record operations")
	}
}

func TestTLSListeners(t *testing.T) {
	s := testldap.Start(t, testldap.WithTLS())
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	tlsConfig := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}

	t.Run("ldaps", func(t *testing.T) {
		c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(tlsConfig))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		if err := c.Bind(testldap.Bob.DN, testldap.Bob.Password); err != nil {
			t.Fatalf("bind over ldaps: %v", err)
		}
	})
	t.Run("StartTLS", func(t *testing.T) {
		c := dial(t, s.URL)
		if err := c.StartTLS(tlsConfig); err != nil {
			t.Fatalf("StartTLS: %v", err)
		}
		if err := c.Bind(testldap.Bob.DN, testldap.Bob.Password); err != nil {
			t.Fatalf("bind after StartTLS: %v", err)
		}
	})
	t.Run("unknown CA is refused", func(t *testing.T) {
		c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
		if err == nil {
			// go-ldap handshakes lazily on some paths; the first request must fail then.
			err = c.Bind(testldap.Bob.DN, testldap.Bob.Password)
			c.Close()
		}
		var unknown x509.UnknownAuthorityError
		if err == nil || !(errors.As(err, &unknown) || strings.Contains(err.Error(), "certificate")) {
			t.Fatalf("got %v, want a certificate verification error", err)
		}
	})
}

func TestServersAreIndependent(t *testing.T) {
	a, b := testldap.Start(t), testldap.Start(t)
	if a.URL == b.URL {
		t.Fatalf("two servers share %s", a.URL)
	}
	a.Stop()
	c := dial(t, b.URL)
	if err := c.Bind(testldap.Alice.DN, testldap.Alice.Password); err != nil {
		t.Fatalf("second server affected by stopping the first: %v", err)
	}
	if _, _, err := net.SplitHostPort(strings.TrimPrefix(b.URL, "ldap://")); err != nil || !strings.HasPrefix(b.URL, "ldap://127.0.0.1:") {
		t.Fatalf("URL %q is not ldap://127.0.0.1:PORT", b.URL)
	}
}

func TestConfigPointsAtServer(t *testing.T) {
	s := testldap.Start(t)
	cfg := s.Config()
	if len(cfg.URLs) != 1 || cfg.URLs[0] != s.URL {
		t.Fatalf("URLs = %v, want [%s]", cfg.URLs, s.URL)
	}
	c := dial(t, s.URL)
	if err := c.Bind(cfg.BindDN, cfg.BindPassword); err != nil {
		t.Fatalf("configured service account cannot bind: %v", err)
	}
	filter := strings.Replace(cfg.UserFilter, "{id}", ldap.EscapeFilter(testldap.Taro.ID), 1)
	res, err := c.Search(ldap.NewSearchRequest(cfg.UserBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, filter, []string{cfg.Attributes.DisplayNameJA}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("configured filter/base do not find taro: %v %v", res, err)
	}
	if got := res.Entries[0].GetEqualFoldAttributeValue(cfg.Attributes.DisplayNameJA); got != testldap.Taro.DisplayNameJA {
		t.Fatalf("%s = %q, want %q", cfg.Attributes.DisplayNameJA, got, testldap.Taro.DisplayNameJA)
	}
	res, err = c.Search(ldap.NewSearchRequest(testldap.Disabled.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, cfg.DisabledFilter, []string{"1.1"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("configured DisabledFilter does not match the disabled user: %v %v", res, err)
	}
}
