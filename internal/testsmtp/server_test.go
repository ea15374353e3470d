package testsmtp

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStartServerReceive(t *testing.T) {
	tests := []struct {
		name         string
		opts         []Option
		keptAfterAll int // messages Messages lists once both were taken
	}{
		{"keeps history", nil, 2},
		{"forgets taken", []Option{WithForgetTaken()}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := StartServer(tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, to := range []string{"a@example.net", "b@example.net"} {
				if err := send(t, s, "idp@example.org", []string{to}, crlf("Subject: to "+to+"\n\nbody\n")); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// Taken out of arrival order: b first.
			for _, to := range []string{"b@example.net", "a@example.net"} {
				m, err := s.Receive(ctx, to)
				if err != nil {
					t.Fatalf("Receive(%s): %v", to, err)
				}
				if m.Subject != "to "+to {
					t.Errorf("Receive(%s) got %q", to, m.Subject)
				}
			}
			if got := len(s.Messages()); got != tt.keptAfterAll {
				t.Errorf("Messages() holds %d, want %d", got, tt.keptAfterAll)
			}
			short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancelShort()
			if _, err := s.Receive(short, "a@example.net"); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("a second Receive got %v, want the deadline: each message is handed out once", err)
			}
		})
	}
}
