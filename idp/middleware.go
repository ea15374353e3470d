package idp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/templates"
)

func defaultTemplates() fs.FS { return templates.FS }

type ctxKey int

const (
	ctxRequestID ctxKey = iota
	ctxClientIP
	ctxRequestState // *requestState
)

// requestID returns the ID given to the request by requestContext.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxRequestID).(string)
	return id
}

// ClientIP returns the caller's address as the app decided it (see
// server.trusted_proxies), for protocol front-ends' own limits.
func ClientIP(ctx context.Context) string { return clientIP(ctx) }

// clientIP returns the caller's address as decided by requestContext.
func clientIP(ctx context.Context) string {
	ip, _ := ctx.Value(ctxClientIP).(string)
	return ip
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// requestContext gives every request an ID and a client address, and logs it.
func (a *App) requestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := randomToken(12)
		ip := a.remoteIP(r)
		ctx := context.WithValue(r.Context(), ctxRequestID, id)
		ctx = context.WithValue(ctx, ctxClientIP, ip)
		ctx = context.WithValue(ctx, ctxRequestState, &requestState{})
		ctx = withOwnerCookies(ctx, r)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		rec.Header().Set("X-Request-Id", id)
		next.ServeHTTP(rec, r.WithContext(ctx))
		// Only the path is logged: query strings carry codes and state.
		a.log.LogAttrs(ctx, slog.LevelInfo, "http request",
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.String("client_ip", ip),
			slog.Duration("duration", time.Since(start)))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// remoteIP believes X-Forwarded-For only from configured proxies, and then
// takes the right-most address that is not itself a trusted proxy.
func (a *App) remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !a.trustedProxy(addr) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !a.trustedProxy(hop) {
			return hop.Unmap().String()
		}
	}
	return host
}

func (a *App) trustedProxy(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range a.proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// contentSecurityPolicy forbids every inline script and style: pages use only
// /static/style.css and no JavaScript at all.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (a *App) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if a.secure {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic into the 500 page. It sits outside the
// session middleware, so a handler that panicked half-way commits none of
// its session changes; the page it shows needs no session (the panic took
// the session's context with it), and the stack is logged once.
func (a *App) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.ErrorContext(r.Context(), "panic serving request",
					"request_id", requestID(r.Context()), "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				a.metrics.RequestFailed(metrics.FailureInternal)
				a.renderStatic(w, r, http.StatusInternalServerError, "error", "", ErrorPage{Title: "error.title", Message: "error.internal"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

const csrfField = "csrf_token"

// csrfProtect checks the synchronizer token of every state-changing request
// on our own forms. A failed check on the login form re-renders the form
// (the ID kept) instead of a dead end.
func (a *App) csrfProtect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		for _, p := range a.csrfExempt {
			if strings.HasPrefix(r.URL.Path, p) {
				next.ServeHTTP(w, r)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		sent := r.PostFormValue(csrfField)
		want := a.sessions.GetString(r.Context(), sessCSRF)
		if want == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(want)) != 1 {
			a.log.WarnContext(r.Context(), "csrf check failed", "request_id", requestID(r.Context()), "path", r.URL.Path)
			if r.URL.Path == "/login" {
				a.renderLoginForm(w, r, http.StatusForbidden, r.PostFormValue("tx"), strings.TrimSpace(r.PostFormValue("username")), "error.csrf")
				return
			}
			a.renderError(w, r, http.StatusForbidden, "error.title", "error.csrf")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// csrfToken returns the session's form token, creating it (and so the
// session) on first use.
func (a *App) csrfToken(ctx context.Context) string { return a.sessionSecret(ctx, sessCSRF) }

// sessionSecret returns a random value kept in the session under key,
// creating it (and so the session) on first use.
func (a *App) sessionSecret(ctx context.Context, key string) string {
	v := a.sessions.GetString(ctx, key)
	if v == "" {
		v = randomToken(32)
		a.sessions.Put(ctx, key, v)
		a.markSessionStart(ctx)
	}
	return v
}
