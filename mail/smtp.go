package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"os"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// TLS modes of SMTPConfig.
const (
	TLSStartTLS = "starttls" // plain connect, then STARTTLS; refuses servers without it
	TLSImplicit = "tls"      // TLS from the first byte (port 465)
	TLSNone     = "none"     // no encryption; only for a relay on a trusted network
)

// DefaultTimeout bounds a whole delivery when SMTPConfig.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// SMTPConfig describes the relay the IdP hands its mail to.
type SMTPConfig struct {
	Host               string
	Port               int    // 0: 587 for starttls, 465 for tls, 25 for none
	TLS                string // starttls (default), tls or none
	Username, Password string // optional; sent only over TLS
	Timeout            time.Duration
	From               string // bare address, e.g. "ninsho-qa@example.ac.jp"
	FromName           string // optional display name; may be non-ASCII
	CAFile             string // optional extra trusted CA (PEM), e.g. a private relay's
	InsecureSkipVerify bool   // accept any server certificate; tests only
}

// SMTP sends mail through an SMTP relay. It is safe for concurrent use;
// each Send opens its own connection.
type SMTP struct {
	cfg       SMTPConfig
	tlsConfig *tls.Config
	logger    *slog.Logger
	msgDomain string // right-hand side of Message-IDs
}

// NewSMTP checks cfg and prepares a sender; it does not connect.
func NewSMTP(cfg SMTPConfig, logger *slog.Logger) (*SMTP, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var problems []error
	cfg.Host = strings.TrimSpace(cfg.Host)
	if cfg.Host == "" || strings.ContainsAny(cfg.Host, " \t\r\n/") {
		problems = append(problems, errors.New("host is missing or malformed"))
	}
	switch cfg.TLS = strings.ToLower(strings.TrimSpace(cfg.TLS)); cfg.TLS {
	case "":
		cfg.TLS = TLSStartTLS
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		problems = append(problems, fmt.Errorf("tls mode %q is not one of starttls, tls, none", cfg.TLS))
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{TLSStartTLS: 587, TLSImplicit: 465, TLSNone: 25}[cfg.TLS]
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		problems = append(problems, fmt.Errorf("port %d out of range", cfg.Port))
	}
	switch {
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	case cfg.Timeout < 0:
		problems = append(problems, errors.New("timeout is negative"))
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		problems = append(problems, errors.New("username and password must be set together"))
	}
	if cfg.Username != "" && cfg.TLS == TLSNone {
		problems = append(problems, errors.New("a username and password need tls: starttls or tls, so the password is never sent in clear"))
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil || from.Name != "" || from.Address != strings.TrimSpace(cfg.From) {
		problems = append(problems, fmt.Errorf("from %q is not a bare mail address", cfg.From))
	} else if probe := gomail.NewMsg(); probe.FromFormat(cfg.FromName, from.Address) != nil {
		problems = append(problems, fmt.Errorf("from name %q cannot be used in a From header", cfg.FromName))
	}
	tlsConfig := &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.CAFile != "" {
		pool, err := loadCAFile(cfg.CAFile)
		if err != nil {
			problems = append(problems, err)
		}
		tlsConfig.RootCAs = pool
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("mail: smtp config: %w", errors.Join(problems...))
	}
	if cfg.InsecureSkipVerify {
		logger.Warn("SMTP server certificate is not verified (insecure_skip_verify)", "host", cfg.Host)
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	return &SMTP{cfg: cfg, tlsConfig: tlsConfig, logger: logger, msgDomain: domain}, nil
}

// loadCAFile returns the system roots plus the certificates in path.
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// Send delivers m. The connection attempt stops when ctx ends; the whole
// exchange is bounded by the configured Timeout. Every failure of the mail
// system wraps ErrUnavailable; a message that cannot be sent at all wraps
// ErrInvalidMessage.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if err := m.validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mail: not sent: %w", err)
	}
	msg, err := s.build(m)
	if err != nil {
		return err
	}
	client, err := gomail.NewClient(s.cfg.Host, s.clientOptions()...)
	if err != nil {
		return fmt.Errorf("mail: smtp client: %w", err) // config checked in NewSMTP; not expected
	}
	started := time.Now()
	err = client.DialAndSendWithContext(ctx, msg)
	if err != nil {
		return s.failure(ctx, m, err, time.Since(started))
	}
	s.logger.Info("mail sent", "to", MaskAddress(m.To), "subject", m.Subject, "elapsed", time.Since(started).Round(time.Millisecond))
	return nil
}

func (s *SMTP) clientOptions() []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(s.tlsConfig),
	}
	switch s.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSStartTLS:
		// Mandatory: a server (or attacker) that hides STARTTLS gets no mail
		// rather than a silent downgrade to clear text.
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.Username != "" {
		// Auto-discovery picks the strongest mechanism the server offers and
		// never PLAIN/LOGIN on an unencrypted connection.
		opts = append(opts,
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username),
			gomail.WithPassword(s.cfg.Password))
	}
	return opts
}

func (s *SMTP) build(m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent(), gomail.WithCharset(gomail.CharsetUTF8))
	if err := msg.FromFormat(s.cfg.FromName, s.cfg.From); err != nil {
		return nil, fmt.Errorf("mail: from header: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("%w: recipient: %v", ErrInvalidMessage, redactAddress(err.Error(), m.To))
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("mail: message id: %w", err)
	}
	// The sender's domain, not this host's name, goes into the Message-ID.
	msg.SetMessageIDWithValue(hex.EncodeToString(id) + "@" + s.msgDomain)
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// failure classifies a delivery error and logs it without the address.
func (s *SMTP) failure(ctx context.Context, m Message, err error, elapsed time.Duration) error {
	detail := redactAddress(err.Error(), m.To)
	if errors.Is(ctx.Err(), context.Canceled) {
		// The caller gave up (e.g. the browser went away): not an outage.
		s.logger.Info("mail not sent: request canceled", "to", MaskAddress(m.To))
		return &deliveryError{msg: "mail: not sent: " + detail, wrapped: []error{ctx.Err(), err}}
	}
	wrapped := []error{ErrUnavailable}
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) && sendErr.Reason == gomail.ErrSMTPRcptTo && !sendErr.IsTemp() {
		wrapped = append(wrapped, ErrRecipientRejected)
	}
	wrapped = append(wrapped, err)
	s.logger.Warn("mail delivery failed", "to", MaskAddress(m.To), "host", s.cfg.Host,
		"elapsed", elapsed.Round(time.Millisecond), "err", detail)
	return &deliveryError{msg: ErrUnavailable.Error() + ": " + detail, wrapped: wrapped}
}

// deliveryError keeps the causes for errors.Is/As while its text has the
// recipient masked, since callers log errors.
type deliveryError struct {
	msg     string
	wrapped []error
}

func (e *deliveryError) Error() string   { return e.msg }
func (e *deliveryError) Unwrap() []error { return e.wrapped }
