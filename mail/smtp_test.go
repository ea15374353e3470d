package mail

import (
	"context"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/internal/testsmtp"
)

const (
	otpSubject = "ワンタイムパスワードのお知らせ / Notification of one time password"
	sender     = "ninsho-qa@example.ac.jp"
	senderName = "統合認証システム / Campus IdP"
)

func configFor(srv *testsmtp.Server) SMTPConfig {
	return SMTPConfig{
		Host:     srv.Host(),
		Port:     srv.Port(),
		TLS:      TLSNone,
		Timeout:  10 * time.Second,
		From:     sender,
		FromName: senderName,
	}
}

func newSender(t *testing.T, cfg SMTPConfig) *SMTP {
	t.Helper()
	s, err := NewSMTP(cfg, nil)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return s
}

func otpMessage(to string) Message {
	return Message{
		To:      to,
		Subject: otpSubject,
		Text:    "ワンタイムパスワード / One-time password: 493817\n",
		HTML:    "<p>ワンタイムパスワード / One-time password: <b>493817</b></p>\n",
	}
}

// sameBody compares bodies up to a final line break, which SMTP transport
// adds to a body that lacks one.
func sameBody(got, want string) bool {
	return strings.TrimSuffix(got, "\n") == strings.TrimSuffix(want, "\n")
}

func TestSMTPDeliversBilingualMessage(t *testing.T) {
	srv := testsmtp.Start(t)
	s := newSender(t, configFor(srv))
	m := otpMessage("user@example.com")
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.WaitFor(t, m.To, 10*time.Second)

	if got.Subject != otpSubject {
		t.Errorf("subject %q, want %q", got.Subject, otpSubject)
	}
	if !sameBody(got.Text, m.Text) {
		t.Errorf("text part %q, want %q", got.Text, m.Text)
	}
	if !sameBody(got.HTML, m.HTML) {
		t.Errorf("html part %q, want %q", got.HTML, m.HTML)
	}
	if got.From != sender || len(got.To) != 1 || got.To[0] != m.To {
		t.Errorf("envelope from %q to %v", got.From, got.To)
	}
	from, err := got.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != sender || from[0].Name != senderName {
		t.Errorf("From header %q parsed as %v (%v)", got.Header.Get("From"), from, err)
	}
	to, err := got.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != m.To {
		t.Errorf("To header %q parsed as %v (%v)", got.Header.Get("To"), to, err)
	}
	if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative;") {
		t.Errorf("Content-Type %q, want multipart/alternative", ct)
	}
	if id := got.Header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.ac.jp>") {
		t.Errorf("Message-ID %q, want <...@example.ac.jp>", id)
	}
	if _, err := got.Header.Date(); err != nil {
		t.Errorf("Date header %q: %v", got.Header.Get("Date"), err)
	}
	if ua := got.Header.Get("User-Agent") + got.Header.Get("X-Mailer"); ua != "" {
		t.Errorf("mail advertises its software: %q", ua)
	}
	// Header lines must stay within the RFC 5322 limit even for the long
	// Japanese subject, which forces folding into several encoded words.
	for i, line := range strings.Split(string(got.Raw), "\r\n") {
		if len(line) > 998 {
			t.Errorf("raw line %d is %d octets long", i, len(line))
		}
		if strings.HasPrefix(line, "Subject:") && strings.ContainsAny(line, "ワ") {
			t.Errorf("subject sent unencoded: %q", line)
		}
	}
}

func TestSMTPTextOnly(t *testing.T) {
	srv := testsmtp.Start(t)
	s := newSender(t, configFor(srv))
	m := Message{To: "plain@example.com", Subject: "ASCII subject", Text: "just text"}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	got := srv.WaitFor(t, m.To, 10*time.Second)
	if !sameBody(got.Text, m.Text) || got.HTML != "" || got.Subject != m.Subject {
		t.Errorf("got subject %q text %q html %q", got.Subject, got.Text, got.HTML)
	}
	if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
}

func TestSMTPOutageAndRecovery(t *testing.T) {
	srv := testsmtp.Start(t)
	s := newSender(t, configFor(srv))
	m := otpMessage("someone.private@example.com")

	srv.Stop()
	err := s.Send(t.Context(), m)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Send to a stopped server = %v, want ErrUnavailable", err)
	}
	if errors.Is(err, ErrRecipientRejected) || errors.Is(err, ErrInvalidMessage) {
		t.Errorf("outage misclassified: %v", err)
	}
	if strings.Contains(err.Error(), m.To) {
		t.Errorf("error text reveals the address: %v", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("network cause not kept for errors.As: %v", err)
	}

	srv.Restart(t)
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send after restart: %v", err)
	}
	if got := srv.WaitFor(t, m.To, 10*time.Second); got.Subject != otpSubject {
		t.Errorf("subject after restart %q", got.Subject)
	}
}

// TestSMTPTimeout: a server that accepts the connection and never answers
// must not hang the sender beyond Timeout.
func TestSMTPTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // hold it open, say nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	cfg := SMTPConfig{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: TLSNone, Timeout: 300 * time.Millisecond, From: sender}
	s := newSender(t, cfg)
	done := make(chan error, 1)
	go func() { done <- s.Send(context.Background(), otpMessage("a@example.com")) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("Send to a silent server = %v, want ErrUnavailable", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Send ignored its Timeout")
	}
}

func TestSMTPServerRefusals(t *testing.T) {
	tests := []struct {
		code         int
		wantRejected bool
	}{
		{450, false}, // temporary: an outage, try later
		{550, true},  // permanent refusal of this recipient
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			srv := testsmtp.Start(t)
			srv.RejectRecipients(tc.code)
			s := newSender(t, configFor(srv))
			m := otpMessage("mailbox.name@example.com")
			err := s.Send(t.Context(), m)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Send = %v, want ErrUnavailable", err)
			}
			if errors.Is(err, ErrRecipientRejected) != tc.wantRejected {
				t.Errorf("ErrRecipientRejected = %v, want %v (%v)", !tc.wantRejected, tc.wantRejected, err)
			}
			if strings.Contains(strings.ToLower(err.Error()), m.To) {
				t.Errorf("error text reveals the address: %v", err)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("%d messages delivered despite the refusal", n)
			}
		})
	}
}

func TestSMTPTLSModes(t *testing.T) {
	tests := []struct {
		name    string
		server  []testsmtp.Option
		config  func(cfg *SMTPConfig, srv *testsmtp.Server)
		wantErr bool
	}{
		{
			name:   "starttls with the server's CA",
			server: []testsmtp.Option{testsmtp.WithSTARTTLS()},
			config: func(cfg *SMTPConfig, srv *testsmtp.Server) { cfg.TLS = TLSStartTLS; cfg.CAFile = srv.CAFile(t) },
		},
		{
			name:    "starttls with an unknown certificate",
			server:  []testsmtp.Option{testsmtp.WithSTARTTLS()},
			config:  func(cfg *SMTPConfig, _ *testsmtp.Server) { cfg.TLS = TLSStartTLS },
			wantErr: true,
		},
		{
			name:   "starttls without verification",
			server: []testsmtp.Option{testsmtp.WithSTARTTLS()},
			config: func(cfg *SMTPConfig, _ *testsmtp.Server) { cfg.TLS = TLSStartTLS; cfg.InsecureSkipVerify = true },
		},
		{
			name:    "starttls required but not offered",
			config:  func(cfg *SMTPConfig, _ *testsmtp.Server) { cfg.TLS = TLSStartTLS },
			wantErr: true,
		},
		{
			name:   "implicit tls",
			server: []testsmtp.Option{testsmtp.WithImplicitTLS()},
			config: func(cfg *SMTPConfig, srv *testsmtp.Server) { cfg.TLS = TLSImplicit; cfg.CAFile = srv.CAFile(t) },
		},
		{
			name:    "implicit tls against a plain server",
			config:  func(cfg *SMTPConfig, _ *testsmtp.Server) { cfg.TLS = TLSImplicit; cfg.Timeout = 2 * time.Second },
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := testsmtp.Start(t, tc.server...)
			cfg := configFor(srv)
			tc.config(&cfg, srv)
			s := newSender(t, cfg)
			m := otpMessage("tls@example.com")
			err := s.Send(t.Context(), m)
			if tc.wantErr {
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("Send = %v, want ErrUnavailable", err)
				}
				if n := len(srv.Messages()); n != 0 {
					t.Errorf("%d messages delivered", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got := srv.WaitFor(t, m.To, 10*time.Second); !got.TLS || got.Subject != otpSubject {
				t.Errorf("received over TLS %v with subject %q", got.TLS, got.Subject)
			}
		})
	}
}

func TestSMTPAuth(t *testing.T) {
	const user, pass = "relay-user", "relay-secret"
	tests := []struct {
		name, user, pass string
		wantErr          bool
	}{
		{"right credentials", user, pass, false},
		{"wrong password", user, "nope", true},
		{"no credentials", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := testsmtp.Start(t, testsmtp.WithSTARTTLS(), testsmtp.WithAuth(user, pass))
			cfg := configFor(srv)
			cfg.TLS, cfg.CAFile = TLSStartTLS, srv.CAFile(t)
			cfg.Username, cfg.Password = tc.user, tc.pass
			logger, logs := debugLogger()
			s, err := NewSMTP(cfg, logger)
			if err != nil {
				t.Fatal(err)
			}
			m := otpMessage("auth@example.com")
			err = s.Send(t.Context(), m)
			if tc.wantErr {
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("Send = %v, want ErrUnavailable", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				if got := srv.WaitFor(t, m.To, 10*time.Second); got.Authenticated != user {
					t.Errorf("authenticated as %q, want %q", got.Authenticated, user)
				}
			}
			if tc.pass != "" && (strings.Contains(logs.String(), tc.pass) || err != nil && strings.Contains(err.Error(), tc.pass)) {
				t.Errorf("password leaked into logs or error")
			}
		})
	}
}

func TestNewSMTPValidation(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "not-a-cert.pem")
	if err := os.WriteFile(caFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	valid := SMTPConfig{Host: "smtp.example.ac.jp", From: sender}
	tests := []struct {
		name   string
		modify func(*SMTPConfig)
		want   string // substring of the error; "" means valid
	}{
		{"minimal", func(*SMTPConfig) {}, ""},
		{"no host", func(c *SMTPConfig) { c.Host = "" }, "host"},
		{"host with space", func(c *SMTPConfig) { c.Host = "smtp example" }, "host"},
		{"unknown tls mode", func(c *SMTPConfig) { c.TLS = "ssl" }, "tls mode"},
		{"tls mode in capitals", func(c *SMTPConfig) { c.TLS = "STARTTLS" }, ""},
		{"port too big", func(c *SMTPConfig) { c.Port = 70000 }, "port"},
		{"negative timeout", func(c *SMTPConfig) { c.Timeout = -time.Second }, "timeout"},
		{"no from", func(c *SMTPConfig) { c.From = "" }, "from"},
		{"from with name", func(c *SMTPConfig) { c.From = "IdP <idp@example.ac.jp>" }, "from"},
		{"japanese from name", func(c *SMTPConfig) { c.FromName = "統合認証システム" }, ""},
		{"username without password", func(c *SMTPConfig) { c.Username = "u" }, "together"},
		{"password in clear", func(c *SMTPConfig) { c.TLS, c.Username, c.Password = TLSNone, "u", "p" }, "in clear"},
		{"missing ca file", func(c *SMTPConfig) { c.CAFile = "/nonexistent/ca.pem" }, "ca file"},
		{"ca file without certificates", func(c *SMTPConfig) { c.CAFile = caFile }, "no PEM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.modify(&cfg)
			_, err := NewSMTP(cfg, nil)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("NewSMTP: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("NewSMTP error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}

	// Several problems are reported together.
	_, err := NewSMTP(SMTPConfig{TLS: "bogus"}, nil)
	for _, want := range []string{"host", "tls mode", "from"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("combined error %v lacks %q", err, want)
		}
	}
}

func TestNewSMTPDefaults(t *testing.T) {
	tests := []struct {
		tls      string
		wantTLS  string
		wantPort int
	}{
		{"", TLSStartTLS, 587},
		{TLSStartTLS, TLSStartTLS, 587},
		{TLSImplicit, TLSImplicit, 465},
		{TLSNone, TLSNone, 25},
	}
	for _, tc := range tests {
		s, err := NewSMTP(SMTPConfig{Host: "smtp.example.ac.jp", From: sender, TLS: tc.tls}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.cfg.TLS != tc.wantTLS || s.cfg.Port != tc.wantPort || s.cfg.Timeout != DefaultTimeout {
			t.Errorf("TLS %q: got mode %q port %d timeout %v", tc.tls, s.cfg.TLS, s.cfg.Port, s.cfg.Timeout)
		}
	}
}

func TestSMTPRefusesInvalidMessages(t *testing.T) {
	srv := testsmtp.Start(t)
	s := newSender(t, configFor(srv))
	for name, m := range invalidMessages {
		t.Run(name, func(t *testing.T) {
			err := s.Send(t.Context(), m)
			if !errors.Is(err, ErrInvalidMessage) || errors.Is(err, ErrUnavailable) {
				t.Errorf("Send = %v, want ErrInvalidMessage only", err)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d invalid messages were delivered", n)
	}
}

func TestSMTPCanceledContextIsNotAnOutage(t *testing.T) {
	srv := testsmtp.Start(t)
	s := newSender(t, configFor(srv))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Send(ctx, otpMessage("c@example.com"))
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Errorf("Send = %v, want context.Canceled and not ErrUnavailable", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages delivered after cancellation", n)
	}
}

func TestSMTPLogsHideBodyAndAddress(t *testing.T) {
	srv := testsmtp.Start(t)
	logger, logs := debugLogger()
	s, err := NewSMTP(configFor(srv), logger)
	if err != nil {
		t.Fatal(err)
	}
	m := otpMessage("very.private@gmail.com")
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	srv.RejectRecipients(550) // the refusal quotes the address back
	if err := s.Send(t.Context(), m); err == nil {
		t.Fatal("refused send succeeded")
	}
	srv.Stop()
	if err := s.Send(t.Context(), m); err == nil {
		t.Fatal("send to stopped server succeeded")
	}
	out := logs.String()
	for _, want := range []string{"mail sent", "mail delivery failed", MaskAddress(m.To)} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"493817", m.To} {
		if strings.Contains(strings.ToLower(out), secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}

func TestSMTPConcurrentSends(t *testing.T) {
	srv := testsmtp.Start(t)
	s := newSender(t, configFor(srv))
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- s.Send(context.Background(), otpMessage(fmt.Sprintf("c%d@example.com", i))) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := range n {
		got := srv.WaitFor(t, fmt.Sprintf("c%d@example.com", i), 10*time.Second)
		if addrs, err := netmail.ParseAddressList(got.Header.Get("To")); err != nil || addrs[0].Address != got.To[0] {
			t.Errorf("To header %q does not match envelope %v", got.Header.Get("To"), got.To)
		}
	}
}
