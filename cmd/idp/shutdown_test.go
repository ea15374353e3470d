package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
)

// TestShutdownTellsBalancerFirst: on the stop signal /readyz answers 503 at
// once while the listener keeps serving new requests for
// server.shutdown_delay; then the drain finishes the request in flight.
func TestShutdownTellsBalancerFirst(t *testing.T) {
	n := sqliteNode(t, testldap.Start(t), testsmtp.Start(t), func(c *config.Config) {
		c.Server.ShutdownDelay = 10 * time.Minute // ended by the test through endDelay
	})
	endDelay := sync.OnceFunc(func() { close(n.endDelay) })
	t.Cleanup(endDelay) // runs before the node's cleanup stops it
	if code, _ := httpGet(t, n.url+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before the signal = %d", code)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "username=alice&password=x&csrf_token=none"
	fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		len(body), body[:10])

	n.cancel() // what SIGTERM does to serve's context
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, text := httpGet(t, n.url+"/readyz")
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(text, "shutting down") {
				t.Errorf("/readyz while stopping = %q", text)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after the stop signal", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Still serving: a new visitor gets the login form.
	b := newBrowser(t, n.url)
	if p := b.Follow(b.Get("/user/")); p.Status != http.StatusOK || !strings.Contains(p.Body, `name="password"`) {
		t.Fatalf("a new request during the shutdown delay = %d, want the login form:\n%s", p.Status, p.Body)
	}
	select {
	case err := <-n.done:
		t.Fatalf("serve returned (%v) during the shutdown delay", err)
	default:
	}

	endDelay()
	fmt.Fprint(conn, body[10:])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("in-flight request answered %d, want 403 (no form token)", resp.StatusCode)
	}
	select {
	case err := <-n.done:
		n.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("serve after draining: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return after the delay and the last request")
	}
}
