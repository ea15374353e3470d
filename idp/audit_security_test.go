package idp_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/store"
)

// factorState is what a security event's change would alter: the user's
// factors record and trusted-browser index, as stored.
func factorState(t *testing.T, e *env, userID string) string {
	t.Helper()
	var b strings.Builder
	for _, kind := range []string{"mfa_factors", "trusted_index"} {
		raw, err := e.db.GetRecord(context.Background(), kind, userID, e.clock.Now())
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		b.WriteString(kind + "=" + string(raw) + ";")
	}
	return b.String()
}

// apiStatus is the status the console's ServerError gives a staff action's
// error: 503 for an outage.
func apiStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case idp.IsUnavailable(err):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// TestSecurityEventsFailWithoutTheirAuditRow: for every security event,
// an audit log that refuses the event's row turns the request into the 503
// page (or the staff action into an outage error), and the change the
// event records does not happen.
func TestSecurityEventsFailWithoutTheirAuditRow(t *testing.T) {
	const addr = "alice.audit@example.net"
	alice := testldap.Alice
	enrolled := func(t *testing.T, e *env) {
		e.browser().enroll(alice, addr)
	}
	// signedIn returns a browser signed in with alice's mailed code.
	signedInBrowser := func(t *testing.T, e *env, trust bool) *browser {
		b := e.browser()
		p := b.mfaLogin(alice)
		b.follow(b.submitCode(p, e.codeFrom(addr, otpSubject), trust))
		return b
	}
	cases := []struct {
		event string
		// setup prepares the account (its audit rows are still taken) and
		// returns the action whose event the log will refuse; the action
		// returns the status it was answered with.
		setup func(t *testing.T, e *env) func() int
		// status is what the action must answer (503 unless the event is a
		// side effect of a request that goes on without it).
		status int
	}{
		{"mfa_email_registered", func(t *testing.T, e *env) func() int {
			b := e.browser()
			p := b.login(alice.ID, alice.Password)
			return func() int { return b.registerAddress(p, addr).status }
		}, http.StatusServiceUnavailable},
		{"mfa_totp_registered", func(t *testing.T, e *env) func() int {
			b := e.browser()
			p := b.login(alice.ID, alice.Password)
			tx := hiddenOr(p, "tx")
			p = b.get("/user/otp?tab=app&tx=" + url.QueryEscape(tx))
			m := secretRe.FindStringSubmatch(p.body)
			if m == nil {
				t.Fatalf("no secret on the App tab:\n%s", p.body)
			}
			return func() int {
				return b.post("/user/otp/app/confirm", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {tx},
					"code": {e.totpCode(m[1], e.clock.Now())}}).status
			}
		}, http.StatusServiceUnavailable},
		{"recovery_codes_issued", func(t *testing.T, e *env) func() int {
			enrolled(t, e)
			b := signedInBrowser(t, e, false)
			p := b.follow(b.get("/user/otp"))
			return func() int {
				return b.post("/user/otp/recovery", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}}).status
			}
		}, http.StatusServiceUnavailable},
		{"trusted_browser_revoked", func(t *testing.T, e *env) func() int {
			enrolled(t, e)
			b := signedInBrowser(t, e, true)
			p := b.follow(b.get("/user/"))
			return func() int {
				return b.post("/user/trusted/revoke", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "id": {"all"}}).status
			}
		}, http.StatusServiceUnavailable},
		{"mfa_reset_started", func(t *testing.T, e *env) func() int {
			enrolled(t, e)
			b := e.browser()
			return func() int {
				p := b.get("/reset")
				st := b.post("/reset/login", url.Values{"csrf_token": {p.hidden(t, "csrf_token")},
					"username": {alice.ID}, "password": {alice.Password}}).status
				if p := b.follow(b.get("/reset/init")); !strings.Contains(p.body, `name="password"`) {
					t.Errorf("the reset began without its audit row: /reset/init is no longer the reset login:\n%s", p.body)
				}
				return st
			}
		}, http.StatusServiceUnavailable},
		{"mfa_reset", func(t *testing.T, e *env) func() int {
			enrolled(t, e)
			b := e.browser()
			p := b.startReset(alice)
			code := e.codeFrom(addr, resetSubject)
			return func() int {
				return b.post("/reset/confirm", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "code": {code}}).status
			}
		}, http.StatusServiceUnavailable},
		{"login_failed", func(t *testing.T, e *env) func() int {
			b := e.browser()
			return func() int { return b.submitLogin(b.openLogin(), "not an id!", "whatever").status }
		}, http.StatusServiceUnavailable},
		// Trusting the browser is a side effect of a login that already
		// passed (and was audited): the login goes on, untrusted.
		{"trusted_browser_added", func(t *testing.T, e *env) func() int {
			enrolled(t, e)
			b := e.browser()
			p := b.mfaLogin(alice)
			code := e.codeFrom(addr, otpSubject)
			return func() int { return b.submitCode(p, code, true).status }
		}, http.StatusSeeOther},
		{"admin_factors_cleared", func(t *testing.T, e *env) func() int {
			enrolled(t, e)
			return func() int {
				_, err := e.app.ClearFactors(context.Background(), testldap.Admin.ID, alice.ID)
				return apiStatus(err)
			}
		}, http.StatusServiceUnavailable},
		{"admin_sessions_ended", func(t *testing.T, e *env) func() int {
			enrolled(t, e)
			b := signedInBrowser(t, e, true)
			return func() int {
				_, err := e.app.EndUserSessions(context.Background(), testldap.Admin.ID, alice.ID)
				if !signedIn(b.follow(b.get("/user/"))) {
					t.Error("the sessions ended without their audit row")
				}
				return apiStatus(err)
			}
		}, http.StatusServiceUnavailable},
		{"admin_password_unlocked", func(t *testing.T, e *env) func() int {
			return func() int { return apiStatus(e.app.UnlockPassword(context.Background(), testldap.Admin.ID, alice.ID)) }
		}, http.StatusServiceUnavailable},
		{"admin_otp_unlocked", func(t *testing.T, e *env) func() int {
			return func() int { return apiStatus(e.app.UnlockOTP(context.Background(), testldap.Admin.ID, alice.ID)) }
		}, http.StatusServiceUnavailable},
		{"helpdesk_reset_code_issued", func(t *testing.T, e *env) func() int {
			enrolled(t, e)
			return func() int {
				code, err := e.app.IssueResetCode(context.Background(), testldap.Helpdesk.ID, alice.ID)
				if code != "" {
					t.Error("a reset code was issued without its audit row")
				}
				return apiStatus(err)
			}
		}, http.StatusServiceUnavailable},
	}
	ls := testldap.Start(t)
	for _, c := range cases {
		t.Run(c.event, func(t *testing.T) {
			te := testenv.NewWithLDAP(t, ls, requireMFA)
			e := &env{t: t, cfg: te.Config, ldap: te.LDAP, smtp: te.SMTP, db: te.DB, clock: te.Clock, app: te.App, srv: te.Server, logs: te.Logs}
			act := c.setup(t, e)
			before := factorState(t, e, alice.ID)
			raw, err := sql.Open("sqlite", te.DBPath)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.ExecContext(context.Background(), `CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
WHEN NEW.event_type = '`+c.event+`' BEGIN SELECT RAISE(ABORT, 'audit refused'); END`); err != nil {
				t.Fatal(err)
			}
			if got := act(); got != c.status {
				t.Errorf("%s refused by the audit log: status %d, want %d", c.event, got, c.status)
			}
			if after := factorState(t, e, alice.ID); after != before && c.status == http.StatusServiceUnavailable {
				t.Errorf("%s refused by the audit log, yet the account changed:\nbefore %s\nafter  %s", c.event, before, after)
			}
			if c.event == "trusted_browser_added" {
				if tbs, err := e.app.TrustedBrowsers(context.Background(), alice.ID); err != nil || len(tbs) != 0 {
					t.Errorf("browser trusted without its audit row: %v %v", tbs, err)
				}
			}
		})
	}
}
