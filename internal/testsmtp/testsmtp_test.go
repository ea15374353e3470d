package testsmtp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func addr(s *Server) string { return net.JoinHostPort(s.Host(), fmt.Sprint(s.Port())) }

func send(t *testing.T, s *Server, from string, to []string, raw string) error {
	t.Helper()
	c, err := smtp.Dial(addr(s))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.SendMail(from, to, strings.NewReader(raw))
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func TestDecoding(t *testing.T) {
	tests := []struct {
		name                     string
		raw                      string
		subject, text, html, frm string
	}{
		{
			name:    "plain ascii",
			raw:     "From: a@example.com\nSubject: Hello\n\nbody line\n",
			subject: "Hello", text: "body line\n",
		},
		{
			name:    "base64 encoded word",
			raw:     "Subject: =?UTF-8?B?44Ov44Oz44K/44Kk44Og44OR44K544Ov44O844OJ44Gu44GK55+l44KJ44Gb?=\n\nx\n",
			subject: "ワンタイムパスワードのお知らせ", text: "x\n",
		},
		{
			name: "folded q-encoded words with ascii tail",
			raw: "Subject: =?UTF-8?q?=E3=83=AF=E3=83=B3=E3=82=BF=E3=82=A4=E3=83=A0?=\n" +
				" =?UTF-8?q?=E3=83=91=E3=82=B9=E3=83=AF=E3=83=BC=E3=83=89?= / Notification\n\nx\n",
			subject: "ワンタイムパスワード / Notification", text: "x\n",
		},
		{
			name: "quoted-printable text",
			raw: "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
				"=E3=82=B3=E3=83=BC=E3=83=89: 123456 a very long line that was soft=\n-broken\n",
			text: "コード: 123456 a very long line that was soft-broken\n",
		},
		{
			name: "base64 text",
			raw:  "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n44Kz44O844OJOiAx\nMjM0NTY=\n",
			text: "コード: 123456",
		},
		{
			name: "alternative with qp text and base64 html",
			raw: "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b1\"\n\n" +
				"--b1\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\ncode =3D 1\n" +
				"--b1\nContent-Type: text/html; charset=UTF-8\nContent-Transfer-Encoding: base64\n\nPHA+Y29kZTwvcD4=\n" +
				"--b1--\n",
			text: "code = 1", html: "<p>code</p>",
		},
		{
			name: "nested mixed with attachment",
			raw: "Content-Type: multipart/mixed; boundary=outer\n\n" +
				"--outer\nContent-Type: multipart/alternative; boundary=inner\n\n" +
				"--inner\nContent-Type: text/plain\n\nplain\n--inner\nContent-Type: text/html\n\n<b>html</b>\n--inner--\n" +
				"--outer\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n--outer--\n",
			text: "plain", html: "<b>html</b>",
		},
	}
	s := Start(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			to := fmt.Sprintf("rcpt%d@example.com", i)
			if err := send(t, s, "sender@example.com", []string{to}, crlf(tc.raw)); err != nil {
				t.Fatalf("send: %v", err)
			}
			m := s.WaitFor(t, to, 10*time.Second)
			if m.Subject != tc.subject || m.Text != tc.text || m.HTML != tc.html {
				t.Errorf("got subject %q text %q html %q\nwant subject %q text %q html %q",
					m.Subject, m.Text, m.HTML, tc.subject, tc.text, tc.html)
			}
			if m.From != "sender@example.com" || len(m.To) != 1 || m.To[0] != to {
				t.Errorf("envelope from %q to %q", m.From, m.To)
			}
			if string(m.Raw) != crlf(tc.raw) {
				t.Errorf("raw message altered:\n%q\nwant\n%q", m.Raw, crlf(tc.raw))
			}
		})
	}
}

func TestRefusesWhatItCannotDecode(t *testing.T) {
	s := Start(t)
	tests := map[string]string{
		"foreign charset in subject": "Subject: =?ISO-2022-JP?B?GyRCJTMhPCVJGyhC?=\n\nx\n",
		"foreign charset in body":    "Content-Type: text/plain; charset=Shift_JIS\n\nx\n",
		"multipart without boundary": "Content-Type: multipart/alternative\n\nx\n",
		"unknown transfer encoding":  "Content-Transfer-Encoding: x-uuencode\n\nx\n",
		"no text at all":             "Content-Type: application/octet-stream\n\nx\n",
		"broken base64":              "Content-Transfer-Encoding: base64\n\n!!!!\n",
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			err := send(t, s, "a@example.com", []string{"b@example.com"}, crlf(raw))
			var serr *smtp.SMTPError
			if !errors.As(err, &serr) || serr.Code != 554 {
				t.Errorf("send: %v, want a 554 refusal", err)
			}
		})
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d undecodable messages were kept", n)
	}
}

func TestWaitForHandsOutMessagesOnceInOrder(t *testing.T) {
	s := Start(t)
	for i, to := range []string{"a@example.com", "b@example.com", "A@example.com"} {
		raw := fmt.Sprintf("Subject: %d\n\nbody\n", i)
		if err := send(t, s, "x@example.com", []string{to}, crlf(raw)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []struct{ to, subject string }{
		{"a@example.com", "0"}, {"b@example.com", "1"}, {"a@example.com", "2"},
	} {
		if got := s.WaitFor(t, want.to, 10*time.Second); got.Subject != want.subject {
			t.Errorf("WaitFor(%s) got subject %q, want %q", want.to, got.Subject, want.subject)
		}
	}
	if n := len(s.Messages()); n != 3 {
		t.Errorf("Messages() has %d, want 3", n)
	}
}

func TestWaitForWakesOnArrival(t *testing.T) {
	s := Start(t)
	errs := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		c, err := smtp.Dial(addr(s))
		if err != nil {
			errs <- err
			return
		}
		defer c.Close()
		errs <- c.SendMail("x@example.com", []string{"late@example.com"}, strings.NewReader("Subject: late\r\n\r\nx\r\n"))
	}()
	if got := s.WaitFor(t, "late@example.com", 30*time.Second); got.Subject != "late" {
		t.Errorf("subject %q", got.Subject)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// recordingTB captures a Fatalf instead of failing the real test.
type recordingTB struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func TestWaitForFailsTheTestOnTimeout(t *testing.T) {
	s := Start(t)
	rec := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WaitFor(rec, "nobody@example.com", 20*time.Millisecond)
	}()
	<-done
	if !strings.Contains(rec.failed, "nobody@example.com") {
		t.Errorf("WaitFor did not fail the test; failure message %q", rec.failed)
	}
}

func TestStopAndRestart(t *testing.T) {
	s := Start(t)
	port := s.Port()
	if err := send(t, s, "x@example.com", []string{"one@example.com"}, "Subject: 1\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := send(t, s, "x@example.com", []string{"two@example.com"}, "Subject: 2\r\n\r\nx\r\n"); err == nil {
		t.Fatal("send to a stopped server succeeded")
	}
	s.Stop() // stopping twice is harmless
	s.Restart(t)
	if s.Port() != port {
		t.Errorf("port changed from %d to %d", port, s.Port())
	}
	if err := send(t, s, "x@example.com", []string{"three@example.com"}, "Subject: 3\r\n\r\nx\r\n"); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	s.WaitFor(t, "three@example.com", 10*time.Second)
	if n := len(s.Messages()); n != 2 {
		t.Errorf("Messages() has %d, want 2 (kept across restart)", n)
	}
}

func TestRejectRecipients(t *testing.T) {
	s := Start(t)
	for _, code := range []int{450, 550} {
		s.RejectRecipients(code)
		err := send(t, s, "x@example.com", []string{"r@example.com"}, "Subject: r\r\n\r\nx\r\n")
		var serr *smtp.SMTPError
		if !errors.As(err, &serr) || serr.Code != code {
			t.Errorf("send: %v, want reply code %d", err, code)
		}
	}
	s.RejectRecipients(0)
	if err := send(t, s, "x@example.com", []string{"r@example.com"}, "Subject: r\r\n\r\nx\r\n"); err != nil {
		t.Errorf("send after reset: %v", err)
	}
}

func rootsOf(t *testing.T, s *Server) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertPEM()) {
		t.Fatal("CertPEM is not a PEM certificate")
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func TestTLSAndAuth(t *testing.T) {
	const user, pass = "relay-user", "relay-pass"
	raw := "Subject: secure\r\n\r\nx\r\n"

	t.Run("starttls with auth", func(t *testing.T) {
		s := Start(t, WithSTARTTLS(), WithAuth(user, pass))
		c, err := smtp.DialStartTLS(addr(s), rootsOf(t, s))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail("x@example.com", nil); err == nil {
			t.Error("MAIL before AUTH was accepted")
		}
		if err := c.Auth(sasl.NewPlainClient("", user, "wrong")); err == nil {
			t.Error("wrong password accepted")
		}
		if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
			t.Fatalf("auth: %v", err)
		}
		if err := c.SendMail("x@example.com", []string{"s@example.com"}, strings.NewReader(raw)); err != nil {
			t.Fatal(err)
		}
		m := s.WaitFor(t, "s@example.com", 10*time.Second)
		if !m.TLS || m.Authenticated != user {
			t.Errorf("TLS %v, authenticated %q", m.TLS, m.Authenticated)
		}
		if s.AuthAttempts() != 2 {
			t.Errorf("AuthAttempts() = %d, want 2", s.AuthAttempts())
		}
	})
	t.Run("implicit tls", func(t *testing.T) {
		s := Start(t, WithImplicitTLS())
		c, err := smtp.DialTLS(addr(s), rootsOf(t, s))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.SendMail("x@example.com", []string{"i@example.com"}, strings.NewReader(raw)); err != nil {
			t.Fatal(err)
		}
		if m := s.WaitFor(t, "i@example.com", 10*time.Second); !m.TLS {
			t.Error("message not marked as received over TLS")
		}
	})
	t.Run("certificate is checked", func(t *testing.T) {
		s := Start(t, WithSTARTTLS())
		c, err := smtp.DialStartTLS(addr(s), &tls.Config{ServerName: "127.0.0.1"})
		if err == nil {
			// The handshake runs on the first command after STARTTLS.
			err = c.Noop()
			c.Close()
		}
		var unknownAuthority x509.UnknownAuthorityError
		if !errors.As(err, &unknownAuthority) {
			t.Errorf("got %v, want the self-signed certificate refused as unknown authority", err)
		}
	})
	t.Run("plain server has no tls", func(t *testing.T) {
		s := Start(t)
		if s.CertPEM() != nil {
			t.Error("CertPEM set without TLS")
		}
		if err := send(t, s, "x@example.com", []string{"p@example.com"}, raw); err != nil {
			t.Fatal(err)
		}
		if m := s.WaitFor(t, "p@example.com", 10*time.Second); m.TLS {
			t.Error("plain message marked as TLS")
		}
	})
}

// TestStopRightAfterStart: Stop must not hang when the serving goroutine
// has not reached Accept yet.
func TestStopRightAfterStart(t *testing.T) {
	for range 20 {
		s := Start(t)
		stopped := make(chan struct{})
		go func() { s.Stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Fatal("Stop hung")
		}
		s.Restart(t)
		if err := send(t, s, "x@example.com", []string{"r@example.com"}, "Subject: r\r\n\r\nx\r\n"); err != nil {
			t.Fatalf("send after restart: %v", err)
		}
	}
}
