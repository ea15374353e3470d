// Package testsmtp runs a real SMTP server inside a test process, on a
// loopback port, and decodes what it receives, so mail code is tested over
// the wire against the same protocol a production relay speaks.
//
// It can offer STARTTLS or implicit TLS with a throwaway self-signed
// certificate, require AUTH PLAIN, refuse recipients with a chosen reply
// code, and stop and restart on the same port to simulate an outage.
package testsmtp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one message as the server got it, decoded for assertions.
type Received struct {
	From    string   // envelope sender (MAIL FROM)
	To      []string // envelope recipients (RCPT TO)
	Subject string   // decoded from RFC 2047 encoded words
	Text    string   // decoded text/plain part, "" if none
	HTML    string   // decoded text/html part, "" if none
	Header  mail.Header
	Raw     []byte // the message exactly as transmitted

	TLS           bool   // the session ran over TLS (STARTTLS or implicit)
	Authenticated string // user name of a successful AUTH, "" if none
}

// Option changes how Start configures the server.
type Option func(*config)

type config struct {
	startTLS    bool
	implicitTLS bool
	user, pass  string
	forgetTaken bool
}

// WithForgetTaken drops each message once WaitFor or Receive has handed it
// out, so a long run (the benchmark) holds only the messages not yet taken;
// Messages then lists only those.
func WithForgetTaken() Option { return func(c *config) { c.forgetTaken = true } }

// WithSTARTTLS offers the STARTTLS extension with a self-signed certificate.
func WithSTARTTLS() Option { return func(c *config) { c.startTLS = true } }

// WithImplicitTLS makes the server speak TLS from the first byte, as on
// port 465, with a self-signed certificate.
func WithImplicitTLS() Option { return func(c *config) { c.implicitTLS = true } }

// WithAuth requires AUTH PLAIN with these credentials before MAIL FROM.
// Without TLS options the server still allows AUTH over plain text, so tests
// can check a client refuses to send a password in clear.
func WithAuth(username, password string) Option {
	return func(c *config) { c.user, c.pass = username, password }
}

// Server is a running test SMTP server.
type Server struct {
	cfg       config
	addr      string
	tlsConfig *tls.Config
	certPEM   []byte

	mu           sync.Mutex
	srv          *smtp.Server
	ln           net.Listener
	served       chan struct{}
	received     []Received
	returned     int // messages already handed out by WaitFor
	arrived      chan struct{}
	rcptCode     int
	authAttempts int
}

// Start runs a server on a free 127.0.0.1 port; it stops when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := StartServer(opts...)
	if err != nil {
		t.Fatalf("testsmtp: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartServer is Start for programs that are not tests (the benchmark): the
// server runs until Close.
func StartServer(opts ...Option) (*Server, error) {
	s := &Server{arrived: make(chan struct{})}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.startTLS || s.cfg.implicitTLS {
		var err error
		s.tlsConfig, s.certPEM, err = selfSignedTLS()
		if err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

// Close stops the server for good (Stop, for servers from StartServer).
func (s *Server) Close() { s.Stop() }

// Host is the address clients dial.
func (s *Server) Host() string {
	host, _, _ := net.SplitHostPort(s.addr)
	return host
}

// Port is the TCP port the server listens on (the same after Restart).
func (s *Server) Port() int {
	_, port, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(port)
	return n
}

// CertPEM is the PEM-encoded self-signed certificate, nil without TLS.
func (s *Server) CertPEM() []byte { return s.certPEM }

// CAFile writes the certificate to a file in the test's temp dir and
// returns its path, for clients configured with a CA file.
func (s *Server) CAFile(t testing.TB) string {
	t.Helper()
	if s.certPEM == nil {
		t.Fatal("testsmtp: CAFile needs WithSTARTTLS or WithImplicitTLS")
	}
	path := filepath.Join(t.TempDir(), "testsmtp-ca.pem")
	if err := os.WriteFile(path, s.certPEM, 0o600); err != nil {
		t.Fatalf("testsmtp: %v", err)
	}
	return path
}

// Messages returns every message received so far, oldest first.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.received))
	copy(out, s.received)
	return out
}

// AuthAttempts counts AUTH exchanges clients started, successful or not.
func (s *Server) AuthAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authAttempts
}

// RejectRecipients makes the server answer RCPT TO with this reply code
// (e.g. 450 or 550) until called again with 0.
func (s *Server) RejectRecipients(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptCode = code
}

// WaitFor waits up to timeout for a message to the envelope recipient `to`
// and fails the test if none comes. Messages are handed out once each, in
// arrival order, so a test that sends twice gets the second message on its
// second call.
func (s *Server) WaitFor(t testing.TB, to string, timeout time.Duration) Received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := s.Receive(ctx, to)
	if err != nil {
		t.Fatalf("testsmtp: no message to %s within %v (%d received in all)", to, timeout, len(s.Messages()))
	}
	return m
}

// Receive is WaitFor for programs: it waits until ctx ends for a message to
// `to`, handing each message out once, in arrival order.
func (s *Server) Receive(ctx context.Context, to string) (Received, error) {
	for {
		s.mu.Lock()
		for i := s.returned; i < len(s.received); i++ {
			if hasRecipient(s.received[i].To, to) {
				m := s.received[i]
				if s.cfg.forgetTaken {
					s.received = slices.Delete(s.received, i, i+1)
				} else {
					// Move the match to the handed-out prefix, keeping the
					// others in arrival order.
					copy(s.received[s.returned+1:i+1], s.received[s.returned:i])
					s.received[s.returned] = m
					s.returned++
				}
				s.mu.Unlock()
				return m, nil
			}
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return Received{}, fmt.Errorf("testsmtp: waiting for a message to %s: %w", to, ctx.Err())
		}
	}
}

func hasRecipient(list []string, to string) bool {
	for _, r := range list {
		if strings.EqualFold(r, to) {
			return true
		}
	}
	return false
}

// Stop closes the listener and every open session, as if the mail server
// went down. Messages received so far are kept.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, ln, served := s.srv, s.ln, s.served
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	// srv.Close only knows listeners Serve has registered; if Serve has not
	// started yet, closing ours makes its first Accept fail instead.
	_ = ln.Close()
	<-served
}

// Restart listens again on the same port after Stop.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	// The port was ours a moment ago; binding it again can only fail if
	// another process took it in between, so retry briefly.
	var (
		ln  net.Listener
		err error
	)
	for range 50 {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testsmtp: restart on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

func (s *Server) serve(ln net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "testsmtp.localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	srv.ErrorLog = discardLogger{}
	srv.AllowInsecureAuth = s.cfg.user != "" && !s.cfg.startTLS && !s.cfg.implicitTLS
	if s.cfg.startTLS {
		srv.TLSConfig = s.tlsConfig
	}
	if s.cfg.implicitTLS {
		ln = tls.NewListener(ln, s.tlsConfig)
	}
	served := make(chan struct{})
	s.mu.Lock()
	s.srv, s.ln, s.served = srv, ln, served
	s.mu.Unlock()
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
}

func (s *Server) deliver(m Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = append(s.received, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// session collects one SMTP transaction.
type session struct {
	server *Server
	conn   *smtp.Conn
	user   string
	from   string
	to     []string
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{server: s, conn: c}, nil
}

func (ss *session) AuthMechanisms() []string {
	if ss.server.cfg.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.server.cfg.user == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnsupported
	}
	ss.server.mu.Lock()
	ss.server.authAttempts++
	ss.server.mu.Unlock()
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.server.cfg.user || password != ss.server.cfg.pass {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.server.cfg.user != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.server.mu.Lock()
	code := ss.server.rcptCode
	ss.server.mu.Unlock()
	if code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 1, 1}, Message: "recipient refused by testsmtp"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := parseMessage(raw)
	if err != nil {
		// Refusing makes a sender's malformed message fail its test loudly.
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "testsmtp cannot parse message: " + err.Error()}
	}
	m.From = ss.from
	m.To = append([]string(nil), ss.to...)
	_, m.TLS = ss.conn.TLSConnectionState()
	m.Authenticated = ss.user
	ss.server.deliver(m)
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.to = "", nil
}

func (ss *session) Logout() error { return nil }

// selfSignedTLS makes a certificate for 127.0.0.1 and localhost that is its
// own root, valid for a day.
func selfSignedTLS() (*tls.Config, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "testsmtp"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, certPEM, nil
}

var errNoBody = errors.New("no text/plain or text/html part")

// parseMessage decodes headers and the text and HTML bodies of raw.
func parseMessage(raw []byte) (Received, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Received{}, fmt.Errorf("headers: %w", err)
	}
	subject, err := decodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Received{}, fmt.Errorf("subject: %w", err)
	}
	r := Received{Subject: subject, Header: msg.Header, Raw: raw}
	if err := collectBodies(&r, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0); err != nil {
		return Received{}, err
	}
	if r.Text == "" && r.HTML == "" {
		return Received{}, errNoBody
	}
	return r, nil
}
