package securitykeys_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
)

// TestKeyEventsFailWithoutTheirAuditRow: an audit log that refuses a
// security key's event turns the request into the 503 page, and the key is
// not added, renamed or removed, nor the passkey sign-in made.
func TestKeyEventsFailWithoutTheirAuditRow(t *testing.T) {
	cases := []struct {
		event string
		// act runs on a browser signed in as alice with one key named
		// "Key A", and returns the page the refused event answered.
		act func(t *testing.T, env *testenv.Env, b *browser, key *softKey) page
	}{
		{"webauthn_registered", func(t *testing.T, env *testenv.Env, b *browser, _ *softKey) page {
			return b.registerKey(newSoftKey(t, "localhost"), "Key B", origin(env))
		}},
		{"webauthn_renamed", func(t *testing.T, env *testenv.Env, b *browser, _ *softKey) page {
			creds, _ := env.DB.WebAuthnCredentials(context.Background(), "alice")
			p := b.get("/user/otp/keys")
			return b.post("/user/otp/keys/rename", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "id": {creds[0].ID}, "name": {"Key B"}})
		}},
		{"webauthn_removed", func(t *testing.T, env *testenv.Env, b *browser, _ *softKey) page {
			creds, _ := env.DB.WebAuthnCredentials(context.Background(), "alice")
			p := b.get("/user/otp/keys")
			return b.post("/user/otp/keys/remove", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "id": {creds[0].ID}})
		}},
		{"login_passkey_ok", func(t *testing.T, env *testenv.Env, _ *browser, key *softKey) page {
			b := newBrowser(t, env)
			p := b.follow(b.get("/user/"))
			p = b.get("/login/passkey?tx=" + url.QueryEscape(p.hidden(t, "tx")))
			r := b.post("/login/passkey", url.Values{"csrf_token": {p.hidden(t, "csrf_token")}, "tx": {p.hidden(t, "tx")},
				"credential": {key.get(t, p.options(t), origin(env))}})
			if u := b.get("/user/"); u.status != http.StatusSeeOther {
				t.Errorf("signed in by passkey without the audit row: /user/ = %d", u.status)
			}
			return r
		}},
	}
	for _, c := range cases {
		t.Run(c.event, func(t *testing.T) {
			env := testenv.New(t, testenv.Localhost, testenv.RequireMFA, func(c *config.Config, _ *ldapstore.Config) {
				c.MFA.WebAuthn.Passwordless = true
			})
			b := newBrowser(t, env)
			b.login(testldap.Alice)
			key := newSoftKey(t, "localhost")
			if p := b.registerKey(key, "Key A", origin(env)); p.status != http.StatusOK {
				t.Fatalf("registration: %d\n%s", p.status, p.body)
			}
			raw, err := sql.Open("sqlite", env.DBPath)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.ExecContext(context.Background(), `CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
WHEN NEW.event_type = '`+c.event+`' BEGIN SELECT RAISE(ABORT, 'audit refused'); END`); err != nil {
				t.Fatal(err)
			}
			p := c.act(t, env, b, key)
			if p.status != http.StatusServiceUnavailable {
				t.Errorf("%s refused by the audit log: status %d, want 503:\n%s", c.event, p.status, p.body)
			}
			creds, err := env.DB.WebAuthnCredentials(context.Background(), "alice")
			if err != nil || len(creds) != 1 || creds[0].Name != "Key A" {
				var names []string
				for _, c := range creds {
					names = append(names, c.Name)
				}
				t.Errorf("keys after the refused %s: %s (%v), want only Key A", c.event, strings.Join(names, ", "), err)
			}
		})
	}
}
