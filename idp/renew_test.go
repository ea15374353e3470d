package idp_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mail"
	"github.com/campusidp/campusidp/store"
)

// countingStore counts the session bindings the app writes, the reads of
// factor settings and the writes of login transactions.
type countingStore struct {
	*store.DB
	binds       atomic.Int32
	factorReads atomic.Int32
	txWrites    atomic.Int32
}

func (s *countingStore) GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error) {
	if kind == "mfa_factors" {
		s.factorReads.Add(1)
	}
	return s.DB.GetRecord(ctx, kind, id, now)
}

func (s *countingStore) PutRecord(ctx context.Context, kind, id string, v []byte, exp time.Time) error {
	if kind == "login_tx" {
		s.txWrites.Add(1)
	}
	return s.DB.PutRecord(ctx, kind, id, v, exp)
}

func (s *countingStore) BindSessionUser(ctx context.Context, token, userID string) error {
	s.binds.Add(1)
	return s.DB.BindSessionUser(ctx, token, userID)
}

// countingSessions counts the session deletes scs makes (one per token
// renewal of a stored session).
type countingSessions struct {
	*store.SessionStore
	deletes atomic.Int32
}

func (s *countingSessions) DeleteCtx(ctx context.Context, token string) error {
	s.deletes.Add(1)
	return s.SessionStore.DeleteCtx(ctx, token)
}

func (s *countingSessions) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// newCountingEnv is newEnv with MFA required and the store wrapped in
// counters.
func newCountingEnv(t *testing.T) (*env, *countingStore, *countingSessions) {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Server.PublicURL = "http://127.0.0.1"
	cfg.Security.SecretKey = config.SecretValue(strings.Repeat("k", 32))
	cfg.Mail.From = "ninsho-qa@campus.example"
	cfg.MFA.Enrollment = config.EnrollmentRequired
	ls := testldap.Start(t)
	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir, err := ldapstore.New(ls.Config(), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dir.Close() })
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "idp.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	smtpSrv := testsmtp.Start(t)
	sender, err := mail.NewSMTP(mail.SMTPConfig{
		Host: smtpSrv.Host(), Port: smtpSrv.Port(), TLS: "none", Timeout: 5 * time.Second, From: cfg.Mail.From,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	mailer := idp.MailerFunc(func(ctx context.Context, m idp.Mail) error {
		return sender.Send(ctx, mail.Message{To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
	})
	st := &countingStore{DB: db}
	sessions := &countingSessions{SessionStore: db.SessionStore()}
	clk := testenv.NewClock(testenv.Start)
	app, err := idp.New(idp.Options{Config: &cfg, Directory: dir, Store: st, Sessions: sessions,
		Now: clk.Now, Mailer: mailer, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("idp log:\n%s", testenv.LastLines(logs.String(), 40))
		}
	})
	e := &env{t: t, cfg: &cfg, ldap: ls, smtp: smtpSrv, db: db, clock: clk, app: app, srv: srv, logs: logs}
	return e, st, sessions
}

// A password login that a trusted browser completes changes privilege
// twice in one request; the session token is renewed and bound once for
// it, and once more for a factor verified in a later request.
func TestSessionTokenRenewedOncePerRequest(t *testing.T) {
	e, st, sessions := newCountingEnv(t)
	u := testldap.Alice
	const addr = "alice.renew@example.net"
	enrolling := e.browser()
	enrolling.enroll(u, addr)
	enrolling.logout()

	b := e.browser()
	p := b.mfaLogin(u)
	before := b.cookie(e.cfg.Session.CookieName)
	binds, deletes := st.binds.Load(), sessions.deletes.Load()
	if !signedIn(b.follow(b.submitCode(p, e.codeFrom(addr, otpSubject), true))) {
		t.Fatal("login with the mailed code failed")
	}
	if got := st.binds.Load() - binds; got != 1 {
		t.Errorf("verifying the code bound the session %d times, want 1", got)
	}
	if got := sessions.deletes.Load() - deletes; got != 1 {
		t.Errorf("verifying the code deleted %d sessions, want 1 (the token before it)", got)
	}
	if after := b.cookie(e.cfg.Session.CookieName); after == before || after == "" {
		t.Fatal("the session token did not change when the factor was verified")
	}
	b.logout()

	login := b.openLogin()
	before = b.cookie(e.cfg.Session.CookieName)
	binds, deletes = st.binds.Load(), sessions.deletes.Load()
	if !signedIn(b.follow(b.submitLogin(login, u.ID, u.Password))) {
		t.Fatal("the trusted browser did not skip the second factor")
	}
	if got := st.binds.Load() - binds; got != 1 {
		t.Errorf("a trusted-browser login bound the session %d times, want 1", got)
	}
	if got := sessions.deletes.Load() - deletes; got != 1 {
		t.Errorf("a trusted-browser login deleted %d sessions, want 1 (the pre-login token)", got)
	}
	if after := b.cookie(e.cfg.Session.CookieName); after == before || after == "" {
		t.Fatal("the session token did not change at login")
	}
	// The one binding is the live token's: ending the user's sessions
	// signs this browser out.
	if n, err := e.db.DeleteUserSessions(context.Background(), u.ID, ""); err != nil || n != 1 {
		t.Fatalf("DeleteUserSessions ended %d sessions (err %v), want 1", n, err)
	}
	if p := b.follow(b.get("/user/")); signedIn(p) {
		t.Fatal("the browser is still signed in after its sessions were ended")
	}
}

// The password POST of a trusted-browser login walks several steps (the
// password, the factor check, the trusted browser, the next step); it reads
// the user's factors once and saves the login transaction once.
func TestTrustedLoginReadsFactorsAndSavesTransactionOnce(t *testing.T) {
	e, st, _ := newCountingEnv(t)
	u := testldap.Alice
	const addr = "alice.once@example.net"
	enrolling := e.browser()
	enrolling.enroll(u, addr)
	enrolling.logout()
	b := e.browser()
	p := b.mfaLogin(u)
	b.follow(b.submitCode(p, e.codeFrom(addr, otpSubject), true))
	b.logout()

	login := b.openLogin()
	reads, writes := st.factorReads.Load(), st.txWrites.Load()
	r := b.submitLogin(login, u.ID, u.Password)
	if got := st.factorReads.Load() - reads; got != 1 {
		t.Errorf("the password POST read the factors %d times, want 1", got)
	}
	if got := st.txWrites.Load() - writes; got != 1 {
		t.Errorf("the password POST saved the login transaction %d times, want 1", got)
	}
	if !signedIn(b.follow(r)) {
		t.Fatal("the trusted browser did not complete the login")
	}
}
