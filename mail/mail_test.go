package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMaskAddress(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abcdef@gmail.com", "ab****@gmail.com"},
		{"abcde@gmail.com", "ab***@gmail.com"},
		{"abc@example.com", "ab***@example.com"},
		{"ab@example.com", "ab***@example.com"},
		{"a@example.com", "a***@example.com"},
		{"@example.com", "***@example.com"},
		{"firstname.lastname@mail2.adm.example.ac.jp", "fi****************@mail2.adm.example.ac.jp"},
		{"山田太郎@example.jp", "山田***@example.jp"},
		{`"a@b"@example.com`, `"a***@example.com`},
		{"no-at-sign", "***"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := MaskAddress(tc.in); got != tc.want {
			t.Errorf("MaskAddress(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactAddress(t *testing.T) {
	const addr = "User.Name@Example.com"
	tests := []struct{ in, want string }{
		{"550 5.1.1 <User.Name@Example.com>: unknown", "550 5.1.1 <Us*******@Example.com>: unknown"},
		{"rcpt user.name@example.com refused, user.name@example.com", "rcpt Us*******@Example.com refused, Us*******@Example.com"},
		{"connection refused", "connection refused"},
	}
	for _, tc := range tests {
		if got := redactAddress(tc.in, addr); got != tc.want {
			t.Errorf("redactAddress(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// invalidMessages are refused by every transport before anything is sent.
var invalidMessages = map[string]Message{
	"no recipient":             {Subject: "s", Text: "t"},
	"header injection in to":   {To: "a@example.com\r\nBcc: evil@example.com", Subject: "s", Text: "t"},
	"display name in to":       {To: "Someone <a@example.com>", Subject: "s", Text: "t"},
	"two recipients":           {To: "a@example.com, b@example.com", Subject: "s", Text: "t"},
	"not an address":           {To: "not-an-address", Subject: "s", Text: "t"},
	"header injection subject": {To: "a@example.com", Subject: "hi\nBcc: evil@example.com", Text: "t"},
	"empty subject":            {To: "a@example.com", Subject: " ", Text: "t"},
	"empty text":               {To: "a@example.com", Subject: "s", HTML: "<p>only html</p>"},
	"invalid utf-8":            {To: "a@example.com", Subject: "s\xff", Text: "t"},
}

func TestOutboxKeepsTheLastMessagesNewestFirst(t *testing.T) {
	o := NewOutbox(3, nil)
	base := time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC)
	tick := 0
	o.now = func() time.Time { tick++; return base.Add(time.Duration(tick) * time.Minute) }
	for i := 1; i <= 5; i++ {
		m := Message{To: fmt.Sprintf("u%d@example.com", i), Subject: fmt.Sprint(i), Text: "code 12345" + fmt.Sprint(i)}
		if err := o.Send(t.Context(), m); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := o.Messages()
		if len(got) != min(i, 3) {
			t.Fatalf("after %d sends: %d messages, want %d", i, len(got), min(i, 3))
		}
		if got[0].Subject != fmt.Sprint(i) || got[0].Text != m.Text || got[0].To != m.To {
			t.Errorf("newest message is %+v, want %+v", got[0], m)
		}
	}
	got := o.Messages()
	for i, want := range []string{"5", "4", "3"} {
		if got[i].Subject != want {
			t.Errorf("Messages()[%d].Subject = %q, want %q", i, got[i].Subject, want)
		}
		if wantTime := base.Add(time.Duration(6-i-1) * time.Minute); !got[i].Time.Equal(wantTime) {
			t.Errorf("Messages()[%d].Time = %v, want %v", i, got[i].Time, wantTime)
		}
	}
	got[0].Subject = "changed"
	if o.Messages()[0].Subject != "5" {
		t.Error("Messages() exposes the outbox's own storage")
	}
}

func TestOutboxDefaultSize(t *testing.T) {
	o := NewOutbox(0, nil)
	for i := range DefaultOutboxSize + 5 {
		if err := o.Send(t.Context(), Message{To: "a@example.com", Subject: fmt.Sprint(i), Text: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(o.Messages()); n != DefaultOutboxSize {
		t.Errorf("kept %d messages, want %d", n, DefaultOutboxSize)
	}
}

func TestOutboxRefusesInvalidMessages(t *testing.T) {
	o := NewOutbox(10, nil)
	for name, m := range invalidMessages {
		t.Run(name, func(t *testing.T) {
			if err := o.Send(t.Context(), m); !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("Send = %v, want ErrInvalidMessage", err)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := o.Send(ctx, Message{To: "a@example.com", Subject: "s", Text: "t"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with canceled context = %v", err)
	}
	if n := len(o.Messages()); n != 0 {
		t.Errorf("%d refused messages were kept", n)
	}
}

func TestOutboxConcurrentUse(t *testing.T) {
	o := NewOutbox(16, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				_ = o.Send(context.Background(), Message{To: "a@example.com", Subject: fmt.Sprint(i, j), Text: "t"})
				_ = o.Messages()
			}
		})
	}
	wg.Wait()
	if n := len(o.Messages()); n != 16 {
		t.Errorf("kept %d messages, want 16", n)
	}
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func debugLogger() (*slog.Logger, *lockedBuffer) {
	buf := &lockedBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func TestOutboxLogsWithoutBodyOrAddress(t *testing.T) {
	logger, buf := debugLogger()
	o := NewOutbox(5, logger)
	m := Message{To: "private.person@gmail.com", Subject: "ワンタイムパスワードのお知らせ", Text: "code 493817", HTML: "<b>493817</b>"}
	if err := o.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	logs := buf.String()
	if !strings.Contains(logs, "mail queued to outbox") || !strings.Contains(logs, MaskAddress(m.To)) {
		t.Errorf("expected a queued line with the masked address, got:\n%s", logs)
	}
	for _, secret := range []string{"493817", m.To} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}
