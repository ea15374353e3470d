package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
)

// writeConfig writes a production-style config file for a private slapd and
// SMTP server, with the store in a temp dir.
func writeConfig(t *testing.T, ls *testldap.Server, smtp *testsmtp.Server, publicURL string) string {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`
server:
  listen: "127.0.0.1:0"
  public_url: %q
  shutdown_delay: 0s
ldap:
  urls: [%q]
  bind_dn: %q
  bind_password: %q
  user_base_dn: %q
  disabled_filter: "(employeeType=disabled)"
store:
  dsn: %q
security:
  secret_key: "0123456789abcdef0123456789abcdef-test"
mail:
  from: "ninsho-qa@campus.example"
  smtp: {host: %q, port: %d, tls: none}
mfa:
  email:
    placeholder_address: "id00000000@mail2.adm.example.ac.jp"
log:
  level: warn
`, publicURL, ls.URL, testldap.ServiceDN, testldap.ServicePassword, testldap.PeopleDN,
		filepath.Join(dir, "idp.db"), smtp.Host(), smtp.Port())
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// servedIdP is an `idp serve` running against a private slapd and SMTP
// server, with the config file the CLI reads too.
type servedIdP struct {
	t    *testing.T
	base string
	path string
	cfg  config.Config
	smtp *testsmtp.Server
}

func startServe(t *testing.T) *servedIdP {
	t.Helper()
	ls := testldap.Start(t)
	smtp := testsmtp.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	path := writeConfig(t, ls, smtp, base)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(config.Describe(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, &cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, ln)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &servedIdP{t: t, base: base, path: path, cfg: cfg, smtp: smtp}
}

// admin runs `idp admin` with the served config.
func (s *servedIdP) admin(args ...string) (int, string, string) {
	s.t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{"admin", args[0], "-config", s.path}, args[1:]...)
	code := run(context.Background(), full, &out, &errOut)
	return code, out.String(), errOut.String()
}

// webClient is a cookie-keeping browser that follows redirects.
type webClient struct {
	t      *testing.T
	base   string
	client *http.Client
}

func (s *servedIdP) browser() *webClient {
	jar, _ := cookiejar.New(nil)
	return &webClient{t: s.t, base: s.base, client: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (c *webClient) get(p string) (int, string) {
	c.t.Helper()
	resp, err := c.client.Get(c.base + p)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *webClient) post(p string, form url.Values) (int, string) {
	c.t.Helper()
	resp, err := c.client.PostForm(c.base+p, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var hiddenFieldRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// field returns a hidden form field of a page.
func field(t *testing.T, body, name string) string {
	t.Helper()
	for _, m := range hiddenFieldRe.FindAllStringSubmatch(body, -1) {
		if m[1] == name {
			return html.UnescapeString(m[2])
		}
	}
	t.Fatalf("no hidden field %q:\n%s", name, body)
	return ""
}

func csrf(t *testing.T, body string) string { return field(t, body, "csrf_token") }

// login submits the login form reached from /user/.
func (c *webClient) login(id, password string) (int, string) {
	c.t.Helper()
	_, page := c.get("/user/")
	return c.post("/login", url.Values{"csrf_token": {csrf(c.t, page)}, "tx": {field(c.t, page, "tx")},
		"username": {id}, "password": {password}})
}

var mailCodeRe = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)

// TestHelpdeskResetCodeCompletesReset: a user with no registered address
// gets a code from `idp admin reset-code` (issued by staff after a phone
// check) and completes the reset on the pages of a running `idp serve`.
func TestHelpdeskResetCodeCompletesReset(t *testing.T) {
	s := startServe(t)
	b := s.browser()
	_, page := b.get("/reset")
	_, page = b.post("/reset/login", url.Values{"csrf_token": {csrf(t, page)}, "username": {testldap.Alice.ID}, "password": {testldap.Alice.Password}})
	_, page = b.post("/reset/init", url.Values{"csrf_token": {csrf(t, page)}})
	for _, want := range []string{"id********@mail2.adm.example.ac.jp", "ICT Support Center", strings.TrimPrefix(s.cfg.Branding.HelpdeskPhone, "+")} {
		if !strings.Contains(page, want) {
			t.Errorf("reset page for a user without an address lacks %q", want)
		}
	}
	if n := len(s.smtp.Messages()); n != 0 {
		t.Errorf("%d mails sent although no address is registered", n)
	}

	code, out, errOut := s.admin("reset-code", "-actor", "helpdesk1", testldap.Alice.ID)
	if code != 0 {
		t.Fatalf("idp admin reset-code: exit %d\n%s", code, errOut)
	}
	m := regexp.MustCompile(`: (\d{6,10})\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no code printed:\n%s", out)
	}
	_, page = b.post("/reset/confirm", url.Values{"csrf_token": {csrf(t, page)}, "code": {m[1]}})
	if !strings.Contains(page, "register a new address") {
		t.Fatalf("helpdesk code did not complete the reset:\n%s", page)
	}

	// Unknown IDs are refused by the CLI.
	if code, _, errOut := s.admin("reset-code", "nobody-here"); code != 1 || !strings.Contains(errOut, "no account") {
		t.Fatalf("reset-code for an unknown ID: exit %d, %q", code, errOut)
	}
}

// TestAdminCommandsActAndAreAudited drives unlock, end-sessions,
// clear-factors and audit-export against a running `idp serve`, checking
// each effect through the pages and each action in the exported log.
func TestAdminCommandsActAndAreAudited(t *testing.T) {
	s := startServe(t)
	alice := testldap.Alice
	b := s.browser()

	// Spend alice's password budget; unlock lets the right password in.
	for i := 0; i < s.cfg.Security.PasswordBudget.PerID.Limit; i++ {
		b.login(alice.ID, "wrong password")
	}
	if status, _ := b.login(alice.ID, alice.Password); status != http.StatusTooManyRequests {
		t.Fatalf("password budget not spent: %d", status)
	}
	if code, out, errOut := s.admin("unlock", "-budget", "password", alice.ID); code != 0 || !strings.Contains(out, "Unlocked the password attempts of alice") || strings.Contains(out, "one-time") {
		t.Fatalf("unlock -budget password: exit %d\n%s%s", code, out, errOut)
	}
	_, page := b.login(alice.ID, alice.Password)
	if !strings.Contains(page, "One-Time Password Settings") {
		t.Fatalf("after unlock the login does not reach the enrollment:\n%s", page)
	}
	// Register an address: alice is fully signed in.
	const addr = "alice.home@example.net"
	_, page = b.post("/user/otp/email/send", url.Values{"csrf_token": {csrf(t, page)}, "tx": {field(t, page, "tx")}, "address": {addr}})
	var mailed string
	for _, msg := range s.smtp.Messages() {
		if mm := mailCodeRe.FindStringSubmatch(msg.Text); mm != nil {
			mailed = mm[1]
		}
	}
	_, page = b.post("/user/otp/email/confirm", url.Values{"csrf_token": {csrf(t, page)}, "tx": {field(t, page, "tx")}, "code": {mailed}})
	if !strings.Contains(page, "settings are complete") {
		t.Fatalf("enrollment failed:\n%s", page)
	}
	if _, page := b.get("/user/"); !strings.Contains(page, "Signed in as") {
		t.Fatalf("not signed in:\n%s", page)
	}
	if code, out, _ := s.admin("unlock", alice.ID); code != 0 || !strings.Contains(out, "one-time passwords of alice") {
		t.Fatalf("unlock: exit %d\n%s", code, out)
	}

	// end-sessions does nothing without -yes, and signs alice out with it.
	if code, _, errOut := s.admin("end-sessions", alice.ID); code != 2 || !strings.Contains(errOut, "Nothing was done") {
		t.Fatalf("end-sessions without -yes: exit %d %q", code, errOut)
	}
	if _, page := b.get("/user/"); !strings.Contains(page, "Signed in as") {
		t.Fatal("end-sessions without -yes ended the session")
	}
	code, out, errOut := s.admin("end-sessions", "-yes", alice.ID)
	if code != 0 || !regexp.MustCompile(`ended [1-9]\d* session`).MatchString(out) {
		t.Fatalf("end-sessions -yes: exit %d\n%s%s", code, out, errOut)
	}
	if _, page := b.get("/user/"); strings.Contains(page, "Signed in as") || !strings.Contains(page, `name="password"`) {
		t.Fatalf("the session survived end-sessions:\n%s", page)
	}

	// clear-factors: an admin action.
	for _, tc := range []struct {
		name, actor, target, want string
	}{
		{"helpdesk actor", "helpdesk1", alice.ID, "needs admin"},
		{"actor without a role", testldap.Bob.ID, alice.ID, "role is none"},
		{"helpdesk on an admin", "helpdesk1", testldap.Admin.ID, "cannot act on"},
	} {
		action := "clear-factors"
		if tc.name == "helpdesk on an admin" {
			action = "end-sessions"
		}
		if code, _, errOut := s.admin(action, "-yes", "-actor", tc.actor, tc.target); code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d %q, want 1 and %q", tc.name, code, errOut, tc.want)
		}
	}
	if code, out, errOut := s.admin("clear-factors", "-yes", "-actor", testldap.Admin.ID, alice.ID); code != 0 || !strings.Contains(out, "Cleared the second factors of alice") {
		t.Fatalf("clear-factors by an admin: exit %d\n%s%s", code, out, errOut)
	}
	_, page = b.login(alice.ID, alice.Password)
	if !strings.Contains(page, "/user/otp/email/send") {
		t.Fatalf("after clear-factors the login does not ask to register a factor:\n%s", page)
	}
	notified := false
	for _, msg := range s.smtp.Messages() {
		notified = notified || strings.Contains(msg.Subject, "Notification of one time password settings initialization")
	}
	if !notified {
		t.Error("the registered address was not told of the cleared factors")
	}

	// audit-export: every action with its actor, to stdout and to a file.
	code, out, errOut = s.admin("audit-export", "-user", alice.ID, "-since", "2000-01-01")
	if code != 0 || !strings.Contains(errOut, "event(s)") {
		t.Fatalf("audit-export: exit %d %q", code, errOut)
	}
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(records) < 2 {
		t.Fatalf("export is not CSV with rows: %v\n%s", err, out)
	}
	actors := map[string]string{}
	for _, rec := range records[1:] {
		if strings.HasPrefix(rec[2], "admin_") {
			actors[rec[2]] = rec[3]
		}
		if rec[4] != alice.ID {
			t.Errorf("-user %s exported an event about %q", alice.ID, rec[4])
		}
	}
	for typ, actor := range map[string]string{"admin_password_unlocked": "cli:", "admin_otp_unlocked": "cli:",
		"admin_sessions_ended": "cli:", "admin_factors_cleared": testldap.Admin.ID} {
		if !strings.HasPrefix(actors[typ], actor) {
			t.Errorf("%s exported with actor %q, want %q", typ, actors[typ], actor)
		}
	}
	file := filepath.Join(t.TempDir(), "audit.csv")
	if code, _, errOut := s.admin("audit-export", "-type", "admin_factors_cleared", "-by", testldap.Admin.ID, "-o", file); code != 0 {
		t.Fatalf("audit-export -o: exit %d %q", code, errOut)
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", st, err)
	}
	data, _ := os.ReadFile(file)
	if rows := strings.Count(string(data), "\n"); rows != 2 || !strings.Contains(string(data), "admin_factors_cleared,admin1,alice") {
		t.Errorf("filtered export (%d lines):\n%s", rows, data)
	}
	if code, _, errOut := s.admin("audit-export", "-o", file); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("export over an existing file: exit %d %q", code, errOut)
	}
}

func TestAdminCommandRefusals(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no action", []string{"admin"}, 2, "usage: idp admin"},
		{"unknown action", []string{"admin", "frobnicate", "alice"}, 2, "unknown action"},
		{"missing ID", []string{"admin", "unlock"}, 2, "usage: idp admin"},
		{"two IDs", []string{"admin", "reset-code", "alice", "bob"}, 2, "usage: idp admin"},
		{"bad budget", []string{"admin", "unlock", "-budget", "both", "alice"}, 2, "-budget must be"},
		{"end-sessions without -yes", []string{"admin", "end-sessions", "alice"}, 2, "run again with -yes"},
		{"revoke-browsers without -yes", []string{"admin", "revoke-browsers", "alice"}, 2, "run again with -yes"},
		{"clear-factors without -yes", []string{"admin", "clear-factors", "alice"}, 2, "remove every second factor"},
		{"export takes no ID", []string{"admin", "audit-export", "alice"}, 2, "usage: idp admin"},
		{"export bad time", []string{"admin", "audit-export", "-since", "yesterday"}, 2, "yesterday"},
		{"missing config", []string{"admin", "unlock", "-config", "/nonexistent/idp.yaml", "alice"}, 1, "/nonexistent/idp.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errOut)
			if code != tt.code || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut.String(), tt.code, tt.want)
			}
		})
	}
}
