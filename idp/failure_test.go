package idp_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/internal/testldap"
)

// TestPanicShowsStaticPage: a handler that panics after reading the session
// gets the bilingual 500 page (not a dropped connection), the stack is
// logged once with the request ID, and the user's next request works.
func TestPanicShowsStaticPage(t *testing.T) {
	e := newEnv(t)
	e.app.Handle("GET /test/panic", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = e.app.Sessions().GetString(r.Context(), "anything")
		panic("test: a bug in a handler")
	}))
	b := e.browser()
	if p := b.login(testldap.Alice.ID, testldap.Alice.Password); p.status != http.StatusOK {
		t.Fatalf("login: %d\n%s", p.status, p.body)
	}

	p := b.get("/test/panic")
	if p.status != http.StatusInternalServerError ||
		!strings.Contains(p.body, "内部エラーが発生しました") || !strings.Contains(p.body, "An internal error occurred") {
		t.Fatalf("panicking handler = %d, want the bilingual 500 page:\n%s", p.status, p.body)
	}
	id := p.header.Get("X-Request-Id")
	logs := e.logs.String()
	if n := strings.Count(logs, "panic serving request"); n != 1 || !strings.Contains(logs, id) || !strings.Contains(logs, "goroutine") {
		t.Errorf("the panic was logged %d times (want once, with request ID %s and the stack):\n%s", n, id, logs)
	}

	if p := b.get("/user/"); p.status != http.StatusOK || !strings.Contains(p.body, testldap.Alice.ID) {
		t.Fatalf("the request after the panic = %d, want the signed-in user's page:\n%s", p.status, p.body)
	}
}
