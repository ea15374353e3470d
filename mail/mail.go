package mail

import (
	"context"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"unicode/utf8"
)

// Message is one outgoing mail. Text is required; HTML, when set, is sent
// as the alternative rendering of the same content.
type Message struct {
	To      string // a bare address, e.g. "user@example.com"
	Subject string
	Text    string
	HTML    string
}

// Sender delivers messages. Consumers declare their own interface of this
// shape; SMTP and Outbox both satisfy it.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

var (
	_ Sender = (*SMTP)(nil)
	_ Sender = (*Outbox)(nil)
)

var (
	// ErrUnavailable wraps every failure of the mail system itself: the
	// server cannot be reached, TLS or authentication fails, it times out,
	// or it answers with a 4xx/5xx reply. Callers show an outage page.
	ErrUnavailable = errors.New("mail: delivery unavailable")

	// ErrRecipientRejected additionally marks a permanent (5xx) refusal of
	// the recipient address. It always comes wrapped together with
	// ErrUnavailable, so callers that only know about outages still work.
	ErrRecipientRejected = errors.New("mail: recipient rejected")

	// ErrInvalidMessage means the message itself cannot be sent (no or a
	// malformed recipient, line breaks in a header, no text). Nothing was
	// transmitted.
	ErrInvalidMessage = errors.New("mail: invalid message")
)

// validate rejects messages that no transport should send. Line breaks in
// To or Subject are refused outright rather than encoded, so no caller bug
// can ever turn into header injection.
func (m Message) validate() error {
	if m.To == "" {
		return fmt.Errorf("%w: no recipient", ErrInvalidMessage)
	}
	if strings.ContainsAny(m.To, "\r\n") || strings.ContainsAny(m.Subject, "\r\n") {
		return fmt.Errorf("%w: line break in a header", ErrInvalidMessage)
	}
	addr, err := netmail.ParseAddress(m.To)
	if err != nil || addr.Name != "" || addr.Address != strings.TrimSpace(m.To) {
		return fmt.Errorf("%w: recipient is not a bare address", ErrInvalidMessage)
	}
	if strings.TrimSpace(m.Subject) == "" {
		return fmt.Errorf("%w: no subject", ErrInvalidMessage)
	}
	if strings.TrimSpace(m.Text) == "" {
		return fmt.Errorf("%w: no text body", ErrInvalidMessage)
	}
	if !utf8.ValidString(m.Subject) || !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidMessage)
	}
	return nil
}

// MaskAddress hides most of the local part of a mail address for logs and
// screens: "abcdef@gmail.com" becomes "ab****@gmail.com". The first two
// characters stay, each other one becomes a star (at least three, so short
// names do not reveal their length), and the domain is kept. A value
// without "@" is masked entirely.
func MaskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		if addr == "" {
			return ""
		}
		return "***"
	}
	local, domain := []rune(addr[:at]), addr[at:]
	keep := min(2, len(local))
	stars := max(len(local)-keep, 3)
	return string(local[:keep]) + strings.Repeat("*", stars) + domain
}

// redactAddress replaces every occurrence of addr in s, in any letter case,
// with its masked form; SMTP replies often quote the recipient.
func redactAddress(s, addr string) string {
	if addr == "" {
		return s
	}
	masked := MaskAddress(addr)
	lower, needle := strings.ToLower(s), strings.ToLower(addr)
	if len(lower) != len(s) {
		// Case mapping changed byte lengths (rare non-ASCII); fall back to
		// exact matching so indexes stay valid.
		return strings.ReplaceAll(s, addr, masked)
	}
	var b strings.Builder
	for {
		i := strings.Index(lower, needle)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(masked)
		s, lower = s[i+len(addr):], lower[i+len(addr):]
	}
}
