package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/internal/devldap"
	"github.com/campusidp/campusidp/internal/testenv"
)

func TestCheckConfigReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.yaml")
	broken := `
server:
  listen: ""
  public_url: "not a url"
ldap:
  urls: ["http://wrong-scheme"]
  user_filter: "(uid=nobody)"
security:
  password_budget:
    per_id: {limit: 0, window: 15m}
session:
  idle_timeout: -5m
log:
  level: loud
`
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check-config", "-config", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	out := stderr.String()
	for _, key := range []string{"server.listen", "server.public_url", "ldap.urls[0]", "ldap.user_filter",
		"security.password_budget.per_id.limit", "session.idle_timeout", "log.level", "security.secret_key", "mail.from"} {
		if !strings.Contains(out, key) {
			t.Errorf("check-config output lacks %s:\n%s", key, out)
		}
	}
}

func TestCheckConfigAcceptsExample(t *testing.T) {
	t.Setenv("IDP_SECRET_KEY", strings.Repeat("s", 40))
	t.Setenv("IDP_LDAP_BIND_PASSWORD", "service-secret")
	t.Setenv("IDP_SMTP_PASSWORD", "smtp-secret")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check-config", "-config", "../../config.example.yaml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("config.example.yaml rejected (exit %d):\n%s", code, stderr.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &stdout, io.Discard); code != 0 || !strings.HasPrefix(stdout.String(), "idp ") {
		t.Fatalf("version: %d %q", code, stdout.String())
	}
}

// devRun is an `idp dev` a test runs in this process on a free loopback port.
type devRun struct {
	base           string
	stdout, stderr testenv.SyncBuffer
	cancel         context.CancelFunc
	done           chan int
}

// startDev runs `idp dev` until stop and returns once it serves; it fails
// the test when the command exits early or does not start within 30s.
func startDev(t *testing.T) *devRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &devRun{cancel: cancel, done: make(chan int, 1)}
	urlc := make(chan string, 1)
	go func() {
		d.done <- cmdDev(ctx, []string{"-listen", "127.0.0.1:0"}, &d.stdout, &d.stderr, func(u string) { urlc <- u })
	}()
	select {
	case d.base = <-urlc:
	case code := <-d.done:
		cancel()
		t.Fatalf("idp dev exited early with %d:\n%s", code, d.stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("idp dev did not start")
	}
	return d
}

// stop cancels the command and returns its exit code; stopped is false
// (and the test fails) when it does not shut down within 20s.
func (d *devRun) stop(t *testing.T) (code int, stopped bool) {
	t.Helper()
	d.cancel()
	select {
	case code = <-d.done:
		return code, true
	case <-time.After(20 * time.Second):
		t.Error("idp dev did not shut down")
		return 0, false
	}
}

// TestDevServesLoginAndDemoLoginWorks runs `idp dev` on a free port and signs
// in with the first printed demo account.
func TestDevServesLoginAndDemoLoginWorks(t *testing.T) {
	dev := startDev(t)
	base, stdout := dev.base, &dev.stdout
	defer func() {
		if code, stopped := dev.stop(t); stopped && code != 0 {
			t.Errorf("idp dev exit code %d", code)
		}
	}()

	out := stdout.String()
	acct := devldap.DemoAccounts()[0]
	for _, want := range []string{base + "/user/", acct.ID, acct.Password} {
		if !strings.Contains(out, want) {
			t.Errorf("idp dev output lacks %q:\n%s", want, out)
		}
	}

	// A fresh start says nothing alarming: no WARN line on stderr.
	for _, line := range strings.Split(dev.stderr.String(), "\n") {
		if strings.Contains(line, "level=WARN") {
			t.Errorf("idp dev warns on a fresh start: %s", line)
		}
	}

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	post := func(path string, form url.Values) string {
		t.Helper()
		resp, err := client.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d\n%s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	field := func(body, name string) string {
		t.Helper()
		m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("page lacks %s:\n%s", name, body)
		}
		return m[1]
	}

	// Password, then the first-time setup of the mailed one-time password,
	// with the code read from the dev outbox page.
	page := get("/user/")
	for _, want := range []string{"Forgot your password?", "Need Help?"} {
		if !strings.Contains(page, want) {
			t.Errorf("the dev login page lacks %q", want)
		}
	}
	page = post("/login", url.Values{"csrf_token": {field(page, "csrf_token")}, "tx": {field(page, "tx")},
		"username": {acct.ID}, "password": {acct.Password}})
	if !strings.Contains(page, "One-Time Password Settings") {
		t.Fatalf("demo login did not reach the setup page:\n%s", page)
	}
	form := url.Values{"csrf_token": {field(page, "csrf_token")}, "tx": {field(page, "tx")}}
	form.Set("address", "demo1.private@example.org")
	page = post("/user/otp/email/send", form)
	code := regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`).FindStringSubmatch(get("/dev/outbox"))
	if code == nil {
		t.Fatal("no code on the dev outbox page")
	}
	form.Del("address")
	form.Set("code", code[1])
	page = post("/user/otp/email/confirm", form)
	if !strings.Contains(page, "settings are complete") {
		t.Fatalf("setup did not complete:\n%s", page)
	}
	if page = get("/user/"); !strings.Contains(page, "Signed in as") || !strings.Contains(page, acct.ID) {
		t.Fatalf("account page after the demo login:\n%s", page)
	}
}
