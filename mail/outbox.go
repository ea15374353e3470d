package mail

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultOutboxSize is used when NewOutbox is given a size below one.
const DefaultOutboxSize = 100

// StoredMessage is a message kept by the Outbox with the time it was queued.
type StoredMessage struct {
	Message
	Time time.Time
}

// Outbox is the development transport: it keeps the last n messages in
// memory for the dev outbox page instead of sending them. Nothing leaves
// the process.
type Outbox struct {
	logger *slog.Logger
	now    func() time.Time

	mu    sync.Mutex
	ring  []StoredMessage
	next  int // slot the next message goes into
	count int // messages held, at most len(ring)
}

// NewOutbox keeps up to n messages; older ones are dropped.
func NewOutbox(n int, logger *slog.Logger) *Outbox {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if n < 1 {
		n = DefaultOutboxSize
	}
	return &Outbox{logger: logger, now: time.Now, ring: make([]StoredMessage, n)}
}

// Send stores m. It checks m as SMTP.Send does, so dev mode catches the
// same mistakes production would.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	if err := m.validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mail: not queued: %w", err)
	}
	o.mu.Lock()
	o.ring[o.next] = StoredMessage{Message: m, Time: o.now()}
	o.next = (o.next + 1) % len(o.ring)
	o.count = min(o.count+1, len(o.ring))
	o.mu.Unlock()
	// The body holds codes: only the subject and the masked address are logged.
	o.logger.Info("mail queued to outbox", "to", MaskAddress(m.To), "subject", m.Subject)
	return nil
}

// Messages returns the kept messages, newest first.
func (o *Outbox) Messages() []StoredMessage {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]StoredMessage, 0, o.count)
	for i := 1; i <= o.count; i++ {
		out = append(out, o.ring[(o.next-i+len(o.ring))%len(o.ring)])
	}
	return out
}
