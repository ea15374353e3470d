package testenv_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mail"
)

func TestEnvServesTheAppAtItsPublicURL(t *testing.T) {
	e := testenv.New(t, testenv.RequireMFA, func(c *config.Config, l *ldapstore.Config) { c.Branding.HelpdeskPhone = "075-000" })
	if e.Config.Server.PublicURL != e.Server.URL {
		t.Fatalf("public URL %q, server at %q", e.Config.Server.PublicURL, e.Server.URL)
	}
	if !strings.HasPrefix(e.Server.URL, "http://127.0.0.1:") {
		t.Fatalf("server not on loopback: %s", e.Server.URL)
	}
	if e.Config.MFA.Enrollment != config.EnrollmentRequired || e.Config.Branding.HelpdeskPhone != "075-000" {
		t.Fatal("options were not applied")
	}
	resp, err := http.Get(e.URL("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
	if !strings.Contains(e.Logs.String(), "path=/healthz") {
		t.Error("the app's log is not captured")
	}
	before := e.Clock.Now()
	e.Clock.Advance(time.Hour)
	if got := e.Clock.Now().Sub(before); got != time.Hour || !before.Equal(testenv.Start) {
		t.Fatalf("clock started at %v and advanced by %v", before, got)
	}
	wall := time.Now()
	e.Clock.Set(wall)
	if !e.Clock.Now().Equal(wall) {
		t.Fatal("Set did not set the clock")
	}
	if _, err := e.Directory.Lookup(t.Context(), "alice"); err != nil {
		t.Fatalf("the directory client does not reach slapd: %v", err)
	}
}

func TestCodeFromReadsTheNewestMatchingMail(t *testing.T) {
	e := testenv.New(t)
	sender, err := mail.NewSMTP(mail.SMTPConfig{Host: e.SMTP.Host(), Port: e.SMTP.Port(), TLS: "none",
		Timeout: 5 * time.Second, From: testenv.Sender}, nil)
	if err != nil {
		t.Fatal(err)
	}
	send := func(to, subject, code string) {
		t.Helper()
		if err := sender.Send(context.Background(), mail.Message{To: to, Subject: subject,
			Text: "Your code:\n\n    " + code + "\n\nBye\n"}); err != nil {
			t.Fatal(err)
		}
	}
	send("a@example.net", testenv.OTPSubject, "111111")
	send("a@example.net", testenv.OTPSubject, "222222")
	send("a@example.net", testenv.ResetSubject, "333333")
	send("b@example.net", testenv.OTPSubject, "444444")

	cases := []struct{ to, subject, want string }{
		{"a@example.net", testenv.OTPSubject, "222222"},
		{"A@Example.NET", testenv.ResetSubject, "333333"},
		{"b@example.net", testenv.OTPSubject, "444444"},
	}
	for _, tc := range cases {
		if got := e.CodeFrom(tc.to, tc.subject); got != tc.want {
			t.Errorf("CodeFrom(%s, %.20s…) = %s, want %s", tc.to, tc.subject, got, tc.want)
		}
	}
	if n := e.MailCount("a@example.net", testenv.OTPSubject); n != 2 {
		t.Errorf("MailCount = %d, want 2", n)
	}
}

func TestLastLines(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb", 5, "a\nb"},
		{"", 3, ""},
	}
	for _, tc := range cases {
		if got := testenv.LastLines(tc.in, tc.n); got != tc.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
