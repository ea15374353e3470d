package main

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/campusidp/campusidp/idp"
)

// Mailer is this program's own idp.Mailer: it keeps every mail in memory
// and prints a line for each (never the body: it carries the code). A real
// program would hand the mail to its own mail service.
type Mailer struct {
	mu   sync.Mutex
	log  io.Writer
	sent []idp.Mail
}

// Send keeps m.
func (m *Mailer) Send(_ context.Context, msg idp.Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, msg)
	if m.log != nil {
		fmt.Fprintf(m.log, "mail to %s: %s\n", msg.To, msg.Subject)
	}
	return nil
}

// Last returns the last mail sent to addr.
func (m *Mailer) Last(addr string) (idp.Mail, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.sent) - 1; i >= 0; i-- {
		if m.sent[i].To == addr {
			return m.sent[i], true
		}
	}
	return idp.Mail{}, false
}
