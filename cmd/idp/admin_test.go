package main

import (
	"bytes"
	"context"
	"fmt"
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

	"github.com/campusidp/campusidp/internal/config"
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

// TestHelpdeskResetCodeCompletesReset: a user with no registered address
// gets a code from `idp admin reset-code` (issued by staff after a phone
// check) and completes the reset on the pages of a running `idp serve`.
func TestHelpdeskResetCodeCompletesReset(t *testing.T) {
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

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	post := func(p string, form url.Values) string {
		resp, err := client.PostForm(base+p, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	csrf := func(body string) string {
		m := regexp.MustCompile(`name="csrf_token" value="([^"]*)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no CSRF token:\n%s", body)
		}
		return m[1]
	}
	resp, err := client.Get(base + "/reset")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := post("/reset/login", url.Values{"csrf_token": {csrf(string(body))}, "username": {testldap.Alice.ID}, "password": {testldap.Alice.Password}})
	page = post("/reset/init", url.Values{"csrf_token": {csrf(page)}})
	for _, want := range []string{"id********@mail2.adm.example.ac.jp", "ICT Support Center", strings.TrimPrefix(cfg.Branding.HelpdeskPhone, "+")} {
		if !strings.Contains(page, want) {
			t.Errorf("reset page for a user without an address lacks %q", want)
		}
	}
	if n := len(smtp.Messages()); n != 0 {
		t.Errorf("%d mails sent although no address is registered", n)
	}

	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"admin", "reset-code", "-config", path, "-actor", "helpdesk1", testldap.Alice.ID}, &out, &errOut); code != 0 {
		t.Fatalf("idp admin reset-code: exit %d\n%s", code, errOut.String())
	}
	m := regexp.MustCompile(`: (\d{6,10})\n`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no code printed:\n%s", out.String())
	}
	page = post("/reset/confirm", url.Values{"csrf_token": {csrf(page)}, "code": {m[1]}})
	if !strings.Contains(page, "register a new address") {
		t.Fatalf("helpdesk code did not complete the reset:\n%s", page)
	}

	// Unknown IDs are refused by the CLI.
	out.Reset()
	errOut.Reset()
	if code := run(ctx, []string{"admin", "reset-code", "-config", path, "nobody-here"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "no account") {
		t.Fatalf("reset-code for an unknown ID: exit %d, %q", code, errOut.String())
	}
}
