package idp_test

import (
	"context"
	"database/sql"
	"net/http"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
)

// TestLoginFailsWithoutItsAuditRow: a store that refuses the audit insert
// of a successful password check turns the login into the 503 page, and
// the browser is not signed in: no login succeeds without its audit row.
func TestLoginFailsWithoutItsAuditRow(t *testing.T) {
	te := testenv.New(t)
	e := &env{t: t, cfg: te.Config, ldap: te.LDAP, smtp: te.SMTP, db: te.DB, clock: te.Clock, app: te.App, srv: te.Server, logs: te.Logs}
	raw, err := sql.Open("sqlite", te.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(context.Background(), `CREATE TRIGGER refuse_login_audit BEFORE INSERT ON audit_log
WHEN NEW.event_type = 'login_password_ok' BEGIN SELECT RAISE(ABORT, 'audit refused'); END`); err != nil {
		t.Fatal(err)
	}

	b := e.browser()
	p := b.submitLogin(b.openLogin(), testldap.Alice.ID, testldap.Alice.Password)
	if p.status != http.StatusServiceUnavailable || p.header.Get("Retry-After") == "" {
		t.Fatalf("login whose audit row was refused = %d, want 503 with Retry-After:\n%s", p.status, p.body)
	}
	if p := b.follow(b.get("/user/")); strings.Contains(p.body, "Signed in as") || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("after the refused audit the browser is signed in (%d):\n%s", p.status, p.body)
	}

	if _, err := raw.ExecContext(context.Background(), `DROP TRIGGER refuse_login_audit`); err != nil {
		t.Fatal(err)
	}
	if p := b.login(testldap.Alice.ID, testldap.Alice.Password); p.status != http.StatusOK || !strings.Contains(p.body, testldap.Alice.ID) {
		t.Fatalf("login once the audit log takes rows again = %d:\n%s", p.status, p.body)
	}
}
