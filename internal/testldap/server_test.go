package testldap_test

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/campusidp/campusidp/internal/testldap"
)

func TestStartServerWithGeneratedUsers(t *testing.T) {
	const n = 5
	s, err := testldap.StartServer(testldap.WithUsers(n), testldap.WithPasswordOnlyUsers(2), testldap.WithQuietLog())
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = s.Close()
		}
	})
	pid := s.PID()
	if pid == 0 {
		t.Fatal("PID is 0 for a running server")
	}

	tests := []struct {
		name   string
		user   testldap.User
		wantOK bool
	}{
		{"first generated", testldap.GeneratedUser(0), true},
		{"last generated", testldap.GeneratedUser(n - 1), true},
		{"fixture user kept", testldap.Alice, true},
		{"beyond n", testldap.GeneratedUser(n), false},
		{"password-only", testldap.PasswordOnlyUser(1), true},
		{"beyond password-only", testldap.PasswordOnlyUser(2), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, s.URL)
			err := c.Bind(tt.user.DN, tt.user.Password)
			if (err == nil) != tt.wantOK {
				t.Fatalf("bind %s: err = %v, want success %v", tt.user.ID, err, tt.wantOK)
			}
		})
	}

	c := dial(t, s.URL)
	if err := c.Bind(testldap.ServiceDN, testldap.ServicePassword); err != nil {
		t.Fatal(err)
	}
	u := testldap.GeneratedUser(3)
	entries := searchUser(t, c, u.ID, "memberOf", "mail")
	if len(entries) != 1 {
		t.Fatalf("got %d entries for %s, want 1", len(entries), u.ID)
	}
	if got := entries[0].GetAttributeValue("mail"); got != u.Mail {
		t.Errorf("mail = %q, want %q", got, u.Mail)
	}
	if got := entries[0].GetAttributeValues("memberOf"); !slices.Contains(got, "cn=students,"+testldap.GroupsDN) {
		t.Errorf("memberOf = %v, want the students group", got)
	}
	if strings.Contains(s.Log(), "BIND") {
		t.Error("a quiet server logged operations")
	}

	closed = true
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s.PID() != 0 {
		t.Error("PID is not 0 after Close")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("slapd (pid %d) still runs after Close", pid)
	}
	// The log lives in the server's directory, which Close removes.
	if log := s.Log(); !strings.HasPrefix(log, "(no log:") {
		t.Errorf("the server's directory survived Close; log still reads %q", log)
	}
}
