// Package testenv runs the IdP for tests wired the way production wires it:
// a private OpenLDAP slapd (internal/testldap), a real SMTP server on
// loopback (internal/testsmtp), a SQLite store, and the app from idp.New
// behind an HTTP server on 127.0.0.1 whose URL is the configured public URL.
// The app's clock is a settable Clock, so tests can expire codes and
// sessions without waiting. Everything stops when the test ends.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/admin"
	"github.com/campusidp/campusidp/idp/consent"
	"github.com/campusidp/campusidp/idp/securitykeys"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mail"
	"github.com/campusidp/campusidp/store"
)

// Subjects of the mails that carry codes (from the manual).
const (
	OTPSubject   = "ワンタイムパスワードのお知らせ / Notification of one time password"
	ResetSubject = "ワンタイムパスワード設定初期化用確認コードのお知らせ / Notification of confirmation code for one time password initialization"
)

// MailWait is how long CodeFrom waits for a mail to arrive.
const MailWait = 10 * time.Second

// Sender is the configured From address of the IdP's mails.
const Sender = "ninsho-qa@campus.example"

// Start is where every Env's clock starts: a fixed instant, so pages and
// screenshots do not change from run to run.
var Start = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

// Clock is a settable clock for lifetimes and budgets.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set puts the clock at t (e.g. the wall clock, for tests whose relying
// party checks token times against its own clock).
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// SyncBuffer collects log output from many goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// Option changes the configuration before the app is built.
type Option func(*config.Config, *ldapstore.Config)

// Localhost serves the IdP as http://localhost:port instead of
// 127.0.0.1: browsers accept no IP address as a WebAuthn relying-party ID,
// so security keys are mounted only with a host name.
func Localhost(c *config.Config, _ *ldapstore.Config) {
	c.Server.PublicURL = strings.Replace(c.Server.PublicURL, "://127.0.0.1:", "://localhost:", 1)
}

// RequireMFA makes every user register and use a second factor.
func RequireMFA(c *config.Config, _ *ldapstore.Config) { c.MFA.Enrollment = config.EnrollmentRequired }

// Env is a running IdP with its directory, mail server, store and clock.
type Env struct {
	Config *config.Config
	LDAP   *testldap.Server
	// Directory is the app's directory client (protocol front-ends read
	// accounts through it too).
	Directory *ldapstore.Directory
	SMTP      *testsmtp.Server
	DB        *store.DB
	Clock     *Clock
	App       *idp.App
	// Keys is the security-key factor; nil unless the public URL has a
	// host name (option Localhost).
	Keys   *securitykeys.Keys
	Server *httptest.Server
	// Logs holds the app's debug log; it is printed when the test fails.
	Logs *SyncBuffer
	// DBPath is the SQLite file of DB (tests that break it on purpose).
	DBPath string

	t testing.TB
}

// New starts a private slapd and the app. Enrollment is optional unless an
// option (RequireMFA) says otherwise.
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	return NewWithLDAP(t, testldap.Start(t), opts...)
}

// NewWithLDAP starts the app against an already running slapd.
func NewWithLDAP(t testing.TB, ls *testldap.Server, opts ...Option) *Env {
	t.Helper()
	ctx := context.Background()

	// The listener comes first so the public URL (the OIDC issuer, the
	// origin the pages are served from) is the server's real address.
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)

	cfg := config.Default()
	cfg.Server.PublicURL = "http://" + srv.Listener.Addr().String()
	cfg.Security.SecretKey = config.SecretValue(strings.Repeat("k", 32))
	cfg.Mail.From = Sender
	cfg.MFA.Enrollment = config.EnrollmentOptional
	cfg.MFA.Email.BlockedDomains = []string{"st.kyoto-u.ac.jp", "kyoto-u.ac.jp", "ms.c.kyoto-u.ac.jp"}
	cfg.MFA.Email.PlaceholderAddress = "id00000000@mail2.adm.example.ac.jp"
	lcfg := ls.Config()
	for _, o := range opts {
		o(&cfg, &lcfg)
	}

	logs := &SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir, err := ldapstore.New(lcfg, logger)
	if err != nil {
		t.Fatalf("testenv: directory: %v", err)
	}
	t.Cleanup(func() { _ = dir.Close() })
	dbPath := filepath.Join(t.TempDir(), "idp.db")
	db, err := store.OpenSQLite(ctx, dbPath, logger)
	if err != nil {
		t.Fatalf("testenv: store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	smtpSrv := testsmtp.Start(t)
	sender, err := mail.NewSMTP(mail.SMTPConfig{
		Host: smtpSrv.Host(), Port: smtpSrv.Port(), TLS: "none", Timeout: 5 * time.Second, From: cfg.Mail.From,
	}, logger)
	if err != nil {
		t.Fatalf("testenv: mail: %v", err)
	}
	mailer := idp.MailerFunc(func(ctx context.Context, m idp.Mail) error {
		return sender.Send(ctx, mail.Message{To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
	})
	clk := NewClock(Start)
	app, err := idp.New(idp.Options{Config: &cfg, Directory: dir, Store: db, Sessions: db.SessionStore(),
		Now: clk.Now, Mailer: mailer, Logger: logger})
	if err != nil {
		t.Fatalf("testenv: idp.New: %v", err)
	}
	if err := admin.Mount(app, logger); err != nil {
		t.Fatalf("testenv: console: %v", err)
	}
	if _, err := consent.Mount(app, logger); err != nil {
		t.Fatalf("testenv: consent: %v", err)
	}
	keys, err := securitykeys.Mount(securitykeys.Options{App: app, Store: db, Logger: logger})
	if err != nil && !errors.Is(err, securitykeys.ErrNoDomain) {
		t.Fatalf("testenv: security keys: %v", err)
	}
	srv.Config.Handler = app.Handler()
	srv.Start()
	// Registered again so the server stops before the store and directory
	// close (cleanups run last-in first-out); Close is idempotent.
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("idp log:\n%s", LastLines(logs.String(), 40))
		}
	})
	return &Env{Config: &cfg, LDAP: ls, Directory: dir, SMTP: smtpSrv, DB: db, Clock: clk, App: app, Keys: keys,
		Server: srv, Logs: logs, DBPath: dbPath, t: t}
}

// URL returns the absolute URL of a path on the IdP, at its public URL
// (the server's address, or localhost with the option Localhost).
func (e *Env) URL(path string) string {
	return strings.TrimSuffix(e.Config.Server.PublicURL, "/") + path
}

// CodeFrom waits for the newest mail to addr with the given subject and
// returns the code in its body. It fails the test when none arrives within
// MailWait, when the body holds no code, or when the sender is wrong.
func (e *Env) CodeFrom(addr, subject string) string {
	e.t.Helper()
	m := NewestMail(e.t, e.SMTP, addr, subject)
	if m.From != e.Config.Mail.From && !strings.Contains(m.From, e.Config.Mail.From) {
		e.t.Errorf("testenv: mail From %q, want %q", m.From, e.Config.Mail.From)
	}
	return CodeIn(e.t, m)
}

// MailCount counts the mails to addr with a subject received so far.
func (e *Env) MailCount(addr, subject string) int { return MailsTo(e.SMTP, addr, subject) }

// NewestMail waits up to MailWait for a mail to addr with the subject and
// returns the newest one; it fails the test when none arrives.
func NewestMail(t testing.TB, srv *testsmtp.Server, addr, subject string) testsmtp.Received {
	t.Helper()
	deadline := time.Now().Add(MailWait)
	for time.Now().Before(deadline) {
		msgs := srv.Messages()
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].Subject == subject && HasAddr(msgs[i].To, addr) {
				return msgs[i]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("testenv: no mail %q to %s within %v", subject, addr, MailWait)
	return testsmtp.Received{}
}

var codeRe = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)

// CodeIn returns the code (a line of 6 to 10 digits) in a mail's body; it
// fails the test when there is none.
func CodeIn(t testing.TB, m testsmtp.Received) string {
	t.Helper()
	match := codeRe.FindStringSubmatch(m.Text)
	if match == nil {
		t.Fatalf("testenv: no code in the mail %q to %v:\n%s", m.Subject, m.To, m.Text)
	}
	return match[1]
}

// MailsTo counts the mails to addr with a subject received so far.
func MailsTo(srv *testsmtp.Server, addr, subject string) int {
	n := 0
	for _, m := range srv.Messages() {
		if m.Subject == subject && HasAddr(m.To, addr) {
			n++
		}
	}
	return n
}

// HasAddr reports whether addr is in an envelope recipient list.
func HasAddr(list []string, addr string) bool {
	for _, a := range list {
		if strings.EqualFold(strings.Trim(a, "<>"), addr) {
			return true
		}
	}
	return false
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
